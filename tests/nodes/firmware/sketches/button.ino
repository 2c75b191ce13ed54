// button: a button to ground on pin 2 (INPUT_PULLUP) lights pin 13 while pressed,
// and prints "pressed"/"released" on each change. Pin 7 toggles all along (other PORTD writes
// must not disturb the button's level).
bool last = HIGH;

void setup() {
  pinMode(2, INPUT_PULLUP);
  pinMode(7, OUTPUT);
  pinMode(13, OUTPUT);
  Serial.begin(115200);
  Serial.println(digitalRead(2) == HIGH ? "up" : "down");
}

void loop() {
  digitalWrite(7, !digitalRead(7));
  bool now = digitalRead(2);
  if (now != last) {
    last = now;
    digitalWrite(13, now == LOW ? HIGH : LOW);
    Serial.println(now == LOW ? "pressed" : "released");
  }
}
