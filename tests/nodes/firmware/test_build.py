"""nodes.firmware.build: real sketches through the real AVR toolchain, into a real cache."""

from __future__ import annotations

import json

import pytest

from mesh.errors import FirmwareError
from nodes.firmware.build import build
from tests.nodes.firmware.common import sketch

pytestmark = pytest.mark.e2e


def test_a_sketch_builds_to_an_elf_and_a_hex_then_comes_from_the_cache(firmware):
    first = firmware("lamp")
    assert first.elf.is_file() and first.hex.read_text().startswith(":")
    assert 0 < first.flash <= 32_256 and 0 < first.ram <= 2_048
    again = firmware("lamp")
    assert again.cached and (again.key, again.elf) == (first.key, first.elf)
    assert json.loads((first.elf.parent / "meta.json").read_text())["sketch"] == "lamp.ino"
    assert (first.elf.parent / "lamp.ino.cpp").is_file()  # kept beside the ELF, for whoever debugs it


def test_a_changed_sketch_is_built_again(tmp_path, firmware_cache):
    path = tmp_path / "blink.ino"
    path.write_text("void setup() { pinMode(13, OUTPUT); }\nvoid loop() { digitalWrite(13, HIGH); }\n")
    one = build(path)
    assert not one.cached and build(path).cached
    path.write_text("void setup() { pinMode(13, OUTPUT); }\nvoid loop() { digitalWrite(13, LOW); }\n")
    two = build(path)
    assert not two.cached and two.key != one.key


def test_a_compile_error_is_one_line_at_the_sketchs_own_line(tmp_path, firmware_cache):
    path = tmp_path / "late.ino"
    path.write_text(
        "int n = 0;\n"
        "void setup() { later(3); }\n"  # calls a function defined below: needs the prototype made for it
        "void loop() {}\n"
        "\n"
        "void later(int k) {\n"
        "  n = k + undefined_thing;\n"  # line 6
        "}\n"
    )
    with pytest.raises(FirmwareError) as caught:
        build(path, shown="lab/late.ino")
    assert str(caught.value) == "lab/late.ino:6:11: error: 'undefined_thing' was not declared in this scope"
    assert "undefined_thing" in caught.value.log


def test_a_link_error_names_the_sketch(tmp_path, firmware_cache):
    path = tmp_path / "nolink.ino"
    path.write_text("void missing();\nvoid setup() { missing(); }\nvoid loop() {}\n")
    with pytest.raises(FirmwareError) as caught:
        build(path, shown="nolink.ino")
    assert str(caught.value) == "nolink.ino:2: error: undefined reference to 'missing()'"


def test_a_sketch_too_big_for_an_uno_is_refused(tmp_path, firmware_cache):
    path = tmp_path / "big.ino"
    path.write_text(
        "char big[3000];\nvoid setup() { big[0] = 1; Serial.begin(9600); Serial.print(big); }\nvoid loop() {}\n"
    )
    with pytest.raises(FirmwareError, match=r"^big.ino: error: too big: its .bss does not fit in the MCU's RAM$"):
        build(path, shown="big.ino")


def test_an_unreadable_sketch_is_one_line(tmp_path, firmware_cache):
    with pytest.raises(FirmwareError) as caught:
        build(tmp_path / "gone.ino", shown="gone.ino")
    assert str(caught.value) == "gone.ino: error: cannot read it: No such file or directory"


def test_the_shipped_sketches_build(firmware):
    for name in ("lamp", "buzzer"):
        assert firmware(name).elf.is_file(), sketch(name)


def test_the_arduino_libraries_a_sketch_includes_are_built_with_it(firmware, firmware_cache):
    """Wire, SPI and SoftwareSerial compiled once each into the cache (EEPROM is all header); it runs."""
    from tests.nodes.firmware.common import Recorded

    built = firmware("libraries")
    folder = firmware_cache / "firmware"
    assert {path.name.rsplit("-", 1)[0] for path in folder.glob("lib-*")} >= {
        "lib-Wire",
        "lib-SPI",
        "lib-SoftwareSerial",
    }
    with Recorded(built.elf) as libraries:
        libraries.mcu.run_for(0.1)
        assert libraries.texts() == ["eeprom 42", "libraries ready"]


def test_a_header_nobody_has_is_one_line_at_its_include(tmp_path, firmware_cache):
    path = tmp_path / "nope.ino"
    path.write_text("#include <Nope.h>\nvoid setup() {}\nvoid loop() {}\n")
    with pytest.raises(FirmwareError) as caught:
        build(path, shown="nope.ino")
    assert str(caught.value) == "nope.ino:1:18: error: Nope.h: No such file or directory"
