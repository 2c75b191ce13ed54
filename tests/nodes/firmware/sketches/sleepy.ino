// Idles asleep: blink pin 13 every 500 ms, sleeping (SLEEP_MODE_IDLE) between timer0 ticks
// instead of busy-waiting in delay(). Same behaviour as blink_delay.ino.
#include <avr/sleep.h>
void setup() { pinMode(13, OUTPUT); set_sleep_mode(SLEEP_MODE_IDLE); }
void loop() {
  static unsigned long last = 0;
  static bool on = false;
  if (millis() - last >= 500) { last += 500; on = !on; digitalWrite(13, on); }
  sleep_mode();  // wakes at the next interrupt (timer0 overflow, every 1.024 ms)
}
