// blink: pin 13 on and off every 100 ms, printing each; it needs nothing from outside (a trace of it depends on nothing else).
void setup() {
  pinMode(13, OUTPUT);
  Serial.begin(115200);
}

void loop() {
  digitalWrite(13, HIGH);
  Serial.println("on");
  delay(100);
  digitalWrite(13, LOW);
  Serial.println("off");
  delay(100);
}
