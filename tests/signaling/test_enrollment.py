"""Enrollment codes: typeable, never mistaken for a command-line option, read forgivingly."""

from __future__ import annotations

import re

from signaling.enrollment import ALPHABET, canonical, code_hash, new_code


def test_codes_are_groups_of_unambiguous_characters() -> None:
    codes = {new_code() for _ in range(2000)}
    assert len(codes) == 2000
    for code in codes:
        assert re.fullmatch(r"[0-9A-Z]{4}(-[0-9A-Z]{4}){4}", code), code
        # A code starting with "-" was read by argparse as an option (`cabine cabin enroll --code -x…`).
        assert not code.startswith("-")
        assert set(code.replace("-", "")) <= set(ALPHABET)
        assert not set(code) & set("ILOU")


def test_a_typed_code_is_read_forgivingly() -> None:
    assert canonical("7kqm 2xhd-9tbc w4nf-jr3p") == "7KQM2XHD9TBCW4NFJR3P"
    assert canonical("O1IL") == "0111"
    assert code_hash("ab01-cdef") == code_hash(" AB0l CDEF ") == code_hash("abOi-cdef")
    assert code_hash("AB01-CDEF") != code_hash("AB01-CDEG")
