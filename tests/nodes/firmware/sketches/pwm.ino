// pwm: analogWrite on pins 5 (timer0, fast PWM) and 9 (timer1, phase-correct), tone(8, 440).
// 100 ms in, pin 9 goes to 75 %; at 200 ms both PWM pins go back to digital (LOW, HIGH).
void setup() {
  analogWrite(5, 64);
  analogWrite(9, 64);
  tone(8, 440);
}

void loop() {
  unsigned long t = millis();
  static byte stage = 0;
  if (stage == 0 && t >= 100) { analogWrite(9, 191); stage = 1; }
  if (stage == 1 && t >= 200) { analogWrite(5, 0); analogWrite(9, 255); stage = 2; }
}
