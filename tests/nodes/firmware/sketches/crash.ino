// crash: untrusted firmware misbehaving in setup(), the way chosen by -DMODE=n.
#include <avr/sleep.h>
#include <avr/interrupt.h>
#ifndef MODE
#define MODE 0
#endif

void recurse(volatile uint8_t depth) {
  volatile uint8_t pad[16];
  pad[0] = depth;
  recurse(depth + pad[0]);
}

void setup() {
  Serial.begin(115200);
  Serial.println("start");
  Serial.flush();
#if MODE == 1   // jump past the end of flash
  asm volatile("ldi r30, 0\n ldi r31, 0x40\n icall");
#elif MODE == 2 // write far outside RAM
  *(volatile uint8_t *)0xFFFF = 1;
#elif MODE == 3 // busy loop with interrupts off
  cli();
  for (;;) {}
#elif MODE == 4 // sleep with interrupts off: never wakes
  set_sleep_mode(SLEEP_MODE_PWR_DOWN);
  sleep_enable();
  cli();
  sleep_cpu();
#elif MODE == 5 // ELPM (not on a 328P) with r0 = 0xFF: simavr reads flash[0xFFFFFF]
  asm volatile("ldi r30, 0xff\n ldi r31, 0xff\n mov r0, r30\n .word 0x95d8\n");
#elif MODE == 6 // unbounded recursion: the stack runs through all RAM and the registers
  recurse(1);
#endif
  Serial.println("survived");
}

void loop() {}
