// watchdog: enables a 60 ms watchdog and never pats it, so the MCU resets every ~60 ms.
// Prints "boot" with the reset cause, lights pin 13 and reads pin 2 (pulled up) each time.
#include <avr/wdt.h>

void setup() {
  byte cause = MCUSR;
  MCUSR = 0;
  wdt_disable();  // a reset leaves the watchdog on (at 15 ms): first thing, turn it off
  pinMode(13, OUTPUT);
  digitalWrite(13, HIGH);
  pinMode(2, INPUT_PULLUP);
  Serial.begin(115200);
  Serial.print("boot ");
  Serial.print((cause & _BV(WDRF)) ? "watchdog " : "power ");
  Serial.println(digitalRead(2));
  Serial.flush();
  wdt_enable(WDTO_60MS);
}

void loop() {}
