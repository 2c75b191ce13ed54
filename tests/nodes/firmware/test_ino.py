"""nodes.firmware.ino: an .ino made a .cpp as the Arduino IDE makes it, and gcc's errors made the sketch's."""

from __future__ import annotations

import pytest

from nodes.firmware.ino import included, parse_errors, preprocess


def test_prototypes_go_before_the_first_definition_and_the_lines_stay_the_sketchs():
    """Each top-level function gets a prototype at the first definition, each one and the code after under its #line."""
    source = "int n = 0;\nvoid setup() { later(3); }\nvoid loop() {}\n\nvoid later(int k) {\n  n = k;\n}\n"
    assert preprocess(source, "late.ino") == (
        '#include <Arduino.h>\n#line 1 "late.ino"\nint n = 0;\n'
        '#line 2 "late.ino"\nvoid setup();\n#line 3 "late.ino"\nvoid loop();\n#line 5 "late.ino"\nvoid later(int k);\n'
        '#line 2 "late.ino"\nvoid setup() { later(3); }\nvoid loop() {}\n\nvoid later(int k) {\n  n = k;\n}\n'
    )


@pytest.mark.parametrize(
    ("source", "prototypes"),
    [
        pytest.param("void f() {}\n", ["void f();"], id="plain"),
        pytest.param(
            "static unsigned long\nticks(byte a, int *b) {\n}\n",
            ["static unsigned long ticks(byte a, int *b);"],
            id="multi-line",
        ),
        pytest.param("void f();\nvoid f() {}\n", [], id="declared-already"),
        pytest.param("void f(int a = 3) {}\n", [], id="default-argument"),
        pytest.param("template <class T> T twice(T x) { return x; }\n", [], id="template"),
        pytest.param("struct A { void m(); };\nvoid A::m() {}\n", [], id="method"),
        pytest.param("ISR(TIMER1_COMPA_vect) {}\n", [], id="macro"),
        pytest.param('// void g() {}\n/* int h() { */\nconst char *s = "void k() {";\n', [], id="comments-and-strings"),
        pytest.param("void f() { if (x) { } while (y) { } }\n", ["void f();"], id="inner-blocks"),
        pytest.param("#define M(x) void x() {}\nvoid f() {}\n", ["void f();"], id="preprocessor-lines"),
    ],
)
def test_which_functions_get_a_prototype(source, prototypes):
    """As the IDE's generator: top-level definitions, not methods, templates, defaults, macros or names declared."""
    made = [line for line in preprocess(source, "s.ino").splitlines() if line.endswith(");") and "#line" not in line]
    made = [line for line in made if line not in source.splitlines()]
    assert made == prototypes


def test_a_sketch_without_functions_is_only_included_and_numbered():
    assert preprocess("int x;\n", "x.ino") == '#include <Arduino.h>\n#line 1 "x.ino"\nint x;\n'


@pytest.mark.parametrize(
    ("output", "errors"),
    [
        pytest.param(
            "lamp.ino: In function 'void loop()':\nlamp.ino:7:20: error: 'levle' was not declared in this scope\n"
            "lamp.ino:7:20: note: suggested alternative: 'level'\n",
            ["firmware/lamp.ino:7:20: error: 'levle' was not declared in this scope"],
            id="compile",
        ),
        pytest.param(
            "/tmp/sketch-x/lamp.ino.cpp:1:21: fatal error: Nope.h: No such file or directory\n",
            ["firmware/lamp.ino:1:21: error: Nope.h: No such file or directory"],
            id="generated-file",
        ),
        pytest.param(
            "/tmp/cc6XIOJV.ltrans0.ltrans.o: In function `main':\n"
            "/home/u/firmware/lamp.ino:2: undefined reference to `missing()'\ncollect2: error: ld returned 1 exit status\n",
            ["firmware/lamp.ino:2: error: undefined reference to 'missing()'"],
            id="link-with-a-line",
        ),
        pytest.param(
            "avr/bin/ld: address 0x800d70 of big.elf section `.bss' is not within region `data'\n",
            ["firmware/lamp.ino: error: too big: its .bss does not fit in the MCU's RAM"],
            id="too-big",
        ),
        pytest.param(
            "main.cpp:(.text+0x8): undefined reference to `setup'\n",
            ["firmware/lamp.ino: error: undefined reference to 'setup'"],
            id="link-without-a-line",
        ),
        pytest.param(
            "lamp.ino:3:1: error: twice\nlamp.ino:3:1: error: twice\nlamp.ino:4:1: warning: fine\n",
            ["firmware/lamp.ino:3:1: error: twice"],
            id="once-each-no-warnings",
        ),
        pytest.param(
            "/usr/share/arduino/core/WString.cpp:29:47: error: 'DECIMAL_DIG' was not declared\n",
            ["/usr/share/arduino/core/WString.cpp:29:47: error: 'DECIMAL_DIG' was not declared"],
            id="other-files-keep-their-names",
        ),
    ],
)
def test_errors_are_one_line_each_naming_the_sketch_as_the_grid_does(output, errors):
    assert parse_errors(output, "lamp.ino", "firmware/lamp.ino", ["/tmp/sketch-x/lamp.ino.cpp"]) == errors


@pytest.mark.parametrize(
    ("source", "headers"),
    [
        pytest.param('#include <Wire.h>\n#include "EEPROM.h"\n', ["Wire.h", "EEPROM.h"], id="both-forms"),
        pytest.param("  #  include <SPI.h>\n#include <SPI.h>\n", ["SPI.h"], id="spaced-once"),
        pytest.param("// #include <SPI.h>\n/* #include <Wire.h>\n */\n", [], id="commented-out"),
        pytest.param('const char *s = "#include <Wire.h>";\n', [], id="in-a-string"),
        pytest.param("#include <avr/wdt.h>\n", ["avr/wdt.h"], id="a-path"),
    ],
)
def test_the_headers_a_sketch_includes(source, headers):
    """What the build looks for among the Arduino libraries: every #include, once, not those commented out."""
    assert included(source) == headers
