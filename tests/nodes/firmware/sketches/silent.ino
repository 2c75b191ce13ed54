// silent: reads Serial and never prints.
void setup() { Serial.begin(115200); }
void loop() { while (Serial.available() > 0) Serial.read(); }
