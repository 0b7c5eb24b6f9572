"""Scenarios from tensorflow/python/kernel_tests/io_ops/decode_csv_op_test.py, and data-driven
edge cases around them (numbers, quoting, na_value, select_cols, delimiters, record shapes).

Most scenarios are one call, ``decode_csv(**args)`` on both sides with the same arguments
(``record_defaults`` may hold numpy arrays, which both sides accept); a case ``{"calls": [...]}``
makes one step per call. Calls marked with ``batch`` also decode their records repeated past
the fast decoder's threshold (128 records): the answer, or the error, must not depend on how
many records come at once.
"""
from __future__ import annotations

import random

import numpy as np

from harness import Scenario


def _np(dtype, *values):
    return np.array(list(values), dtype=dtype)


def _outputs(values):
    """loaders' outputs with each string column (nested lists of bytes) as an object array, as
    TF returns it, so that the record keeps one entry per column."""
    return [np.array(value, dtype=object) if isinstance(value, list) else value for value in values]


class _Decode:
    """Mixin: ``decode_csv(**self.args)`` on both sides (``args`` from the class or the case)."""

    args: dict = {}

    def _calls(self) -> list:
        """Each call's arguments, and each batched call again with its records repeated."""
        case = self.case if self.case is not None else self.args
        calls = []
        for args in case.get("calls", [case]):
            args = dict(args)
            repeat = args.pop("batch", 0)
            calls.append(args)
            if repeat:
                calls.append(dict(args, records=list(args["records"]) * repeat))
        return calls

    def tf(self, tf, rec):
        for args in self._calls():
            rec.run(lambda: tf.decode_csv(**args))

    def lo(self, lo, rec):
        for args in self._calls():
            rec.run(lambda: _outputs(lo.decode_csv(**args)))


# ---------------------------------------------------------------- DecodeCSVOpTest, one by one


class testSimple(_Decode, Scenario):
    args = {"records": ["1", "2", '"3"'], "record_defaults": [[1]]}


class testSimpleWithScalarDefaults(_Decode, Scenario):
    args = {"records": ["1,4", "2,5", "3,6"], "record_defaults": [1, 2]}


class testSimpleWith2DDefaults(_Decode, Scenario):
    args = {"records": ["1", "2", "3"], "record_defaults": [[[0]]]}


class testSimpleNoQuoteDelimiter(_Decode, Scenario):
    args = {"records": ["1", "2", '"3"'], "record_defaults": [[""]], "use_quote_delim": False}


class testScalar(_Decode, Scenario):
    args = {"records": '1,""', "record_defaults": [[3], [4]]}


class test2D(_Decode, Scenario):
    args = {"records": [["1", "2"], ['""', "4"]], "record_defaults": [[5]]}


class test2DNoQuoteDelimiter(_Decode, Scenario):
    args = {"records": [["1", "2"], ['""', '"']], "record_defaults": [[""]], "use_quote_delim": False}


class testDouble(_Decode, Scenario):
    args = {"records": ["1.0", "-1.79e+308", '"1.79e+308"'], "record_defaults": [_np(np.double)]}


class testInt64(_Decode, Scenario):
    args = {"records": ["1", "2", '"2147483648"'], "record_defaults": [_np(np.int64)]}


class testComplexString(_Decode, Scenario):
    args = {"records": ['"1.0"', '"ab , c"', '"a\nbc"', '"ab""c"', " abc "], "record_defaults": [["1"]]}


class testMultiRecords(_Decode, Scenario):
    args = {"records": ["1.0,4,aa", "0.2,5,bb", "3,6,cc"], "record_defaults": [[1.0], [1], ["aa"]]}


class testNA(_Decode, Scenario):
    args = {"records": ["2.0,NA,aa", "NA,5,bb", "3,6,NA"], "record_defaults": [[0.0], [0], [""]], "na_value": "NA"}


class testWithDefaults(_Decode, Scenario):
    args = {"records": [",1,", "0.2,3,bcd", "3.0,,"], "record_defaults": [[1.0], [0], ["a"]]}


class testWithDefaultsAndNoQuoteDelimiter(_Decode, Scenario):
    args = {"records": [",1,", "0.2,3,bcd", '3.0,,"'], "record_defaults": [[1.0], [0], ["a"]], "use_quote_delim": False}


class testWithTabDelim(_Decode, Scenario):
    args = {"records": ["1\t1", "0.2\t3", "3.0\t"], "record_defaults": [[1.0], [0]], "field_delim": "\t"}


class testWithoutDefaultsError(_Decode, Scenario):
    args = {"records": [",1", "0.2,3", "3.0,"], "record_defaults": [[1.0], _np(np.int32)]}


class testWrongFieldIntError(_Decode, Scenario):
    args = {"records": [",1", "0.2,234a", "3.0,2"], "record_defaults": [[1.0], _np(np.int32)]}


class testOutOfRangeError(_Decode, Scenario):
    args = {"records": ["1", "9999999999999999999999999", "3"], "record_defaults": [[1]]}


class testWrongFieldFloatError(_Decode, Scenario):
    args = {"records": [",1", "0.2,2", "3.0adf,3"], "record_defaults": [[1.0], _np(np.int32)]}


class testWrongFieldStringError(_Decode, Scenario):
    args = {"records": ['"1,a,"', "0.22", 'a"bc'], "record_defaults": [["a"]]}


class testWrongDefaults(_Decode, Scenario):
    args = {"records": [",1", "0.2,2", "3.0adf,3"], "record_defaults": [[1.0]]}


class testShortQuotedString(_Decode, Scenario):
    args = {"records": ['"'], "record_defaults": [["default"]]}


class testSelectCols(_Decode, Scenario):
    args = {"records": [",,", "4,5,6"], "record_defaults": [[1], [2]], "select_cols": [0, 1]}


class testSelectColsInclLast(_Decode, Scenario):
    args = {"records": [",,", "4,5,6"], "record_defaults": [[0], [1], [2]], "select_cols": [0, 1, 2]}


class testWrongSelectColsInclLast(_Decode, Scenario):
    args = {"records": [",,", "4,5,6"], "record_defaults": [[0], [1], [2]], "select_cols": [0, 1, 3]}


class testWrongSelectColsLen(_Decode, Scenario):
    args = {"records": ["1,2,3", "4,5,6"], "record_defaults": [[0], [0], [0]], "select_cols": [0]}


class testWrongSelectColsSorting(_Decode, Scenario):
    args = {"records": ["1,2,3"], "record_defaults": [[0], [1]], "select_cols": [1, 0]}


class testWrongSelectColsIndicesNegative(_Decode, Scenario):
    args = {"records": ["1,2,3"], "record_defaults": [[0], [1]], "select_cols": [-1, 0]}


class testWrongSelectColsIndicesTooHigh(_Decode, Scenario):
    args = {"records": ["1,2,3"], "record_defaults": [[0], [1]], "select_cols": [0, 3]}


class testNumpyAttribute(Scenario):
    def tf(self, tf, rec):
        rec.run(lambda: tf.decode_csv(tf.constant("1,2,3,4,5"), np.zeros(5)))

    def lo(self, lo, rec):
        rec.run(lambda: lo.decode_csv("1,2,3,4,5", np.zeros(5)))


# ---------------------------------------------------------------- many records, batch sizes


def _table(count, seed=0):
    """``count`` records of a float32, an int32, a float64 and a string column, with empty
    fields, spaces, signs and exponents."""
    rng = random.Random(seed + count)
    records = []
    for index in range(count):
        floats = ["", f"{rng.uniform(-1e3, 1e3):.7g}", f"{rng.gauss(0, 1):.9e}", "-0", f"{rng.random():.3f}"]
        ints = ["", str(rng.randint(-2**31, 2**31 - 1)), f" {rng.randint(0, 99)} ", f"+{rng.randint(0, 9)}"]
        fields = [rng.choice(floats), rng.choice(ints), f"{rng.uniform(-1, 1) * 10 ** rng.randint(-300, 300):.17g}",
                  rng.choice(["", "x", "yy", " spaced ", f"s{index}"])]
        records.append(",".join(fields))
    return records


_TABLE_DEFAULTS = [[-1.5], [7], _np(np.float64, 2.5), ["none"]]


class testManyRecords(_Decode, Scenario):
    cases = [
        {"records": _table(size), "record_defaults": _TABLE_DEFAULTS} for size in (0, 1, 2, 127, 128, 129, 300, 1000)
    ]


class testSameRecordAnyBatchSize(_Decode, Scenario):
    """One awkward record, alone and among many: the answer (or the error) must be the same."""

    cases = [
        {"records": ["1,2\r"], "record_defaults": [[0], [0]], "batch": 200},  # CR inside an unquoted field
        {"records": ["\r1,\n2"], "record_defaults": [[0], [0]], "batch": 200},  # CR/LF skipped at field starts
        {"records": ["1,2,\r"], "record_defaults": [[0], [0]], "batch": 200},
        {"records": ["1,2\r\n"], "record_defaults": [[0], [0]], "batch": 200},
        {"records": ["1", ""], "record_defaults": [[0]], "batch": 100},  # an empty record
        {"records": ["3.0"], "record_defaults": [[0]], "batch": 200},
        {"records": ["1e3"], "record_defaults": [_np(np.int64)], "batch": 200},
        {"records": ["1.0000000596046447753906251"], "record_defaults": [[0.0]], "batch": 200},
        {"records": ["0x1.8p1,0x10"], "record_defaults": [[0.0], _np(np.float64)], "batch": 200},
        {"records": ["nan,NaN,inf"], "record_defaults": [[0.0], [1.0], [2.0]], "batch": 200},
        {"records": ["9223372036854775808"], "record_defaults": [_np(np.int64)], "batch": 200},
        {"records": [b"a,\xff"], "record_defaults": [[""], [""]], "batch": 200},
        {"records": [" 1.5 ,\t2\t"], "record_defaults": [[0.0], [0]], "batch": 200},
        {"records": ["1,-1.0,-1"], "record_defaults": [[5], [2.5], [7]], "na_value": "-1", "batch": 200},
        {"records": ["\ufeff1,2"], "record_defaults": [[0], [0]], "batch": 200},
        {"records": ["16777217,1e-40"], "record_defaults": [[0.0], [0.0]], "batch": 200},
    ]


class testBadRecordAmongMany(_Decode, Scenario):
    """A bad record at the end of a batch big enough for the fast decoder."""

    args = {"calls": [
        {"records": [f"{i},{i}.5" for i in range(299)] + [bad], "record_defaults": [[0], [0.0]]}
        for bad in ("299,oops", "299", "299,1,2", "", '299,"1.5', "3.5,1", "299,1e")
    ]}


# ---------------------------------------------------------------- numbers


def _numbers(dtype, texts):
    defaults = [_np(dtype)] if dtype is not int else [[0]]
    return {"records": list(texts), "record_defaults": defaults, "batch": 130}


def _each(dtype, texts):
    """One call per text (each is an error on its own)."""
    return {"calls": [_numbers(dtype, [text]) for text in texts]}


_FLOAT_OK = [
    ["1", "-2.5", "1e5", "1E-5", ".5", "5.", "00.5", "1.e5", "+1.5", "-0", "3.14159265358979323846"],
    ["0x1p3", "0x10", "0X1.8P1", "-0x10", "+0x10", "0x.8", "0x1.", "0x1P-2", "0x1.8p+1", " 0x10 "],
    ["inf", "-Infinity", "INF", "+inf", "nan", "NaN(123)", "-nan", "+nan", "nan()", "nan(a_b)"],
    ["1e-40", "1e-45", "7e-46", "8e-46", "1.4e-45", "-1e-50", "0x1p-149", "0x1p-150", "1e-400"],
    ["1e39", "3.4028236e38", "3.40282356779733661637539395458142568448e38", "3.4028234e38", "1e400", "-1e39"],
    ["16777217", "1.00000005960464477539062", "1.000000059604644775390625", "1.0000000596046447753906251",
     "0x1.000001p0", "0x1.0000010000000000001p0", "0.1", "1.1754943508222875e-38"],
    [" 1.5 ", "\t2\x0b", "\x0c3\r", '" 4 "'],
]
_FLOAT_BAD = ["1e", "+-1", "-+1", ".", "1_0", "1e+", "0x", "1.5f", "1d", "e5", "0x-1", "0xp1", "0x1p",
              "0xinf", "0x1p1.5", "nan(-)", "infinit", "infinityy", "1e5.", "1 5", "\u0663", "--1", "1..2"]


class testFloat32Parsing(_Decode, Scenario):
    cases = [_numbers(np.float32, texts) for texts in _FLOAT_OK] + [_each(np.float32, _FLOAT_BAD)]


class testFloat64Parsing(_Decode, Scenario):
    cases = [_numbers(np.float64, texts) for texts in _FLOAT_OK] + [
        _numbers(np.float64, ["1.7976931348623157e308", "1.7976931348623159e308", "4.9e-324", "2.5e-324",
                              "2.4e-324", "0x1p-1074", "0x1p-1075", "0x1.fffffffffffff8p1023"]),
    ] + [_each(np.float64, _FLOAT_BAD)]


class testInt32Parsing(_Decode, Scenario):
    cases = [
        _numbers(int, ["12", " 12 ", "+12", "-0", "-2147483648", "2147483647", "010", "\x0b5\x0c", '" 7 "']),
    ] + [_each(int, ["3.0", "1e3", "1.", "0x10", "2147483648", "-2147483649", "+-1", "1_000", "1 2", "inf", "nan",
                     "\u0663", "+", "-", "1,5"])]


class testInt64Parsing(_Decode, Scenario):
    cases = [
        _numbers(np.int64, ["9223372036854775807", "-9223372036854775808", " 5 ", "2147483648", "+0"]),
    ] + [_each(np.int64, ["9223372036854775808", "-9223372036854775809", "99999999999999999999999", "3.0", "1e3",
                          "0x10"])]


# ---------------------------------------------------------------- quoting, na_value, select_cols, delimiters


class testQuoting(_Decode, Scenario):
    cases = [{"records": records, "record_defaults": defaults, **extra} for records, defaults, extra in [
        (['"a,b",1', '"a""b",2', '"""",3', '"a,",4', '"",5'], [["d"], [0]], {}),
        (['"a",'], [[""], ["d"]], {}),
        (['1,"",3'], [[0], ["d"], [0]], {}),
        (['"1\r\n",2', '"x\ny",3'], [[""], [0]], {}),
        (['" 5\n"'], [[0]], {}),
        (['"a"",b",1'], [[""], [0]], {}),
        (['"a,b"'], [[""], [""]], {"use_quote_delim": False}),
        (['a"b', '""'], [[""]], {"use_quote_delim": False}),
        (['"NA",NA'], [["d"], [1.5]], {"na_value": "NA"}),
    ]] + [{"calls": [{"records": [bad], "record_defaults": [[""]]} for bad in ('a"b', '"a"b', '"ab', '"a""', ' "a"', '"a" ')]}]


class testNaValue(_Decode, Scenario):
    cases = [
        {"records": ["nan,NaN"], "record_defaults": [[1.0], [2.0]], "na_value": "nan"},
        {"records": [",x"], "record_defaults": [[1], [""]], "na_value": "x"},
        {"records": ["-1,-1.0,-1"], "record_defaults": [[7], [2.5], ["s"]], "na_value": "-1"},
        {"records": ["?,1"], "record_defaults": [_np(np.float32), [0]], "na_value": "?"},
        {"records": ["NA,NA", "na,1"], "record_defaults": [["d"], [3]], "na_value": "NA"},
    ]


class testSelectColsCases(_Decode, Scenario):
    cases = [{"records": records, "record_defaults": defaults, "select_cols": select}
             for records, defaults, select in [
                 (["1,2,3,4,5", "6,7,8,9,10"], [[0], [0.0], [""]], [0, 2, 4]),
                 (["1,2,3"], [[0]], [2]),
                 (["1,2,3"], [[0]], [5]),
                 (['1,2,"x'], [[0], [0]], [0, 1]),
                 (['1,"x,3'], [[0], [0]], [0, 2]),
                 (["1,x,3"], [[0], [0]], [0, 2]),
                 (["1,2,3,4", "5,6"], [[0], [0]], [0, 1]),
                 (["1,", "5,6,"], [[0], [9]], [0, 1]),
                 ([f"{i},{i + 1},x{i},y" for i in range(200)], [[0], [""]], [1, 2]),
             ]]


class testFieldDelim(_Decode, Scenario):
    cases = [{"records": records, "record_defaults": defaults, "field_delim": delim}
             for records, defaults, delim in [
                 (['"a\tb"\t1'], [[""], [0]], "\t"),
                 (["1|2|"], [[0], [0], [5]], "|"),
                 (["1 2"], [[0], [0]], " "),
                 (['1"2'], [[0], [0]], '"'),
                 (["1\n2", "1\n\n2"], [[0], [0]], "\n"),
                 (["1;2"] * 150, [[0], [0]], ";"),
                 (["1\u00e92"], [[0], [0]], "\u00e9"),
                 (["1"], [[0]], ",,"),
                 (["1"], [[0]], ""),
             ]]


class testEmptyRecords(_Decode, Scenario):
    cases = [
        {"records": [""], "record_defaults": [[0]]},
        {"records": ["1", ""], "record_defaults": [[0]]},
        {"records": ["\n"], "record_defaults": [[0]]},
        {"records": ["\r\n"], "record_defaults": [[0], [1]]},
        {"records": [","], "record_defaults": [[1], [2]]},
        {"records": [",,"], "record_defaults": [[1], [2], [3]]},
        {"records": ["1,2,"], "record_defaults": [[1], [2]]},
        {"records": "", "record_defaults": [[0]]},
    ]


class testRecordDefaultsForms(_Decode, Scenario):
    cases = [{"records": records, "record_defaults": defaults} for records, defaults in [
        ([","], [np.int64(5), 2.5]),
        ([","], [_np(np.int64, 5), _np(np.float64, 7.5)]),
        ([",,,,"], [_np(np.float32, 1.5), _np(np.float64, 2.5), _np(np.int32, 3), _np(np.int64, 4), _np(object, b"s")]),
        (["1,2"], [[2**31], [0]]),
        ([","], [[2**40], [-2**63]]),
        (["1"], [2**40]),
        (["1"], [np.float64(2.5)]),
        ([","], [[b"x"], ["\u00e9"]]),
        ([","], [[float("nan")], [float("inf")]]),
    ]] + [{"calls": [{"records": ["1"], "record_defaults": defaults} for defaults in (
        [[2**63]], [[True]], [[None]], [np.zeros(0, np.float16)], [np.zeros(0, np.int8)], [np.zeros(0, np.bool_)],
        [[1, 2]], [],
    )]}]


class testRecordsShapes(_Decode, Scenario):
    cases = [{"records": records, "record_defaults": defaults} for records, defaults in [
        ([["1,a", "2,b"], ["3,c", "4,"]], [[0], ["z"]]),
        ([[["1"]], [["2"]]], [[0]]),
        ([["1"], ["2", "3"]], [[0]]),
        ([1, 2], [[0]]),
        (np.array([b"1,x", b"2,y"], dtype=object), [[0], [""]]),
        (np.array([["1", "2", "3"], ["4", "5", "6"]]), [[0.0]]),
        ([[]], [[0]]),
        ([], [[0], [0.5]]),
        ("a,x", [[""], [0]]),
        ([b"\xff,1"], [[""], [0]]),
    ]]


class testDefaultTensor(Scenario):
    def tf(self, tf, rec):
        rec.run(lambda: tf.decode_csv([","], [tf.constant([3]), [0]]))

    def lo(self, lo, rec):
        import torch

        rec.run(lambda: lo.decode_csv([","], [torch.tensor([3], dtype=torch.int32), [0]]))
