// A lamp: pin 13 (the Uno's LED) lights for a line "1" and goes out for "0"; one line printed each time.
const int LAMP = 13;

void setup() {
  pinMode(LAMP, OUTPUT);
  Serial.begin(115200);
  Serial.println("lamp ready");
}

void loop() {
  String line = readLine();
  if (line.length() == 0) return;
  if (line == "1") {
    setLamp(true);
  } else if (line == "0") {
    setLamp(false);
  } else {
    Serial.print("lamp? ");
    Serial.println(line);
  }
}

// Defined below its first use: the prototype the build adds makes that legal, as in the Arduino IDE.
void setLamp(bool on) {
  digitalWrite(LAMP, on ? HIGH : LOW);
  Serial.println(on ? "lamp on" : "lamp off");
}

// A line from Serial without its end ("\n" or "\r\n"); empty until a whole one has come.
String readLine() {
  static String pending;
  while (Serial.available() > 0) {
    char c = Serial.read();
    if (c == '\r') continue;
    if (c == '\n') {
      String line = pending;
      pending = "";
      return line;
    }
    pending += c;
  }
  return String();
}
