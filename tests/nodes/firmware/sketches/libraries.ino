// libraries: the Arduino libraries that come with the core, each used once; EEPROM written and read back.
#include <EEPROM.h>
#include <Wire.h>
#include <SPI.h>
#include <SoftwareSerial.h>
SoftwareSerial other(10, 11);

void setup() {
  Serial.begin(115200);
  EEPROM.write(3, 42);
  Serial.print("eeprom ");
  Serial.println(EEPROM.read(3));
  Wire.begin();
  SPI.begin();
  other.begin(9600);
  Serial.println("libraries ready");
}

void loop() {}
