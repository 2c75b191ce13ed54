// The buzzer, as Arduino firmware: reads a line from Serial; for a "1" it sounds pin 8 (440 Hz for
// 100 ms) and prints "buzz buzz buzz", for anything else it prints "...". Each printed line is the
// node's answer to the message that was that line (see docs/firmware.md).
const int SPEAKER = 8;
char line[32];
byte used = 0;

void setup() {
  pinMode(SPEAKER, OUTPUT);
  Serial.begin(115200);
}

void answer(const char *text) {
  if (strcmp(text, "1") == 0) {
    tone(SPEAKER, 440, 100);
    Serial.println("buzz buzz buzz");
  } else {
    Serial.println("...");
  }
}

void loop() {
  while (Serial.available() > 0) {
    char c = Serial.read();
    if (c == '\r') continue;
    if (c == '\n') {
      line[used] = '\0';
      answer(line);
      used = 0;
    } else if (used < sizeof(line) - 1) {
      line[used++] = c;
    }
  }
}
