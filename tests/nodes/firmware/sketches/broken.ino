// broken: line 3 names something undeclared.
void setup() { pinMode(13, OUTPUT); }
void loop() { digitalWrite(13, levle); }
