"""Quoted CSV on the fast path: blocks whose quotes follow TF's rules decode through pandas with
the exact decoder's answer; malformed quotes leave the block to the exact decoder and its error."""
from __future__ import annotations

import csv as pycsv
import random

import numpy as np
import pandas as pd
import pytest
import torch

import loaders
from loaders import CSVDataset
from loaders.csv_fast import decode_block_fast
from loaders.csv_parse import Column, RecordSpec, decode_lines

KINDS = [torch.float32, torch.float64, torch.int32, torch.int64, loaders.string]
TEXTS = ["a", "b c", "x,y", 'say "hi"', '"', '""', ",", "NA", "d", "é"]


def _number(rng: random.Random, dtype: torch.dtype) -> str:
    if dtype in (torch.int32, torch.int64):
        bad = rng.random() < 0.02  # TF refuses these: pandas reads them as ints
        good = [str(rng.randint(-999, 999)), f" {rng.randint(0, 9)} ", "+7"]
        return rng.choice(["3.0", "1e3"] if bad else good)
    return rng.choice([f"{rng.gauss(0, 100):.6g}", f"{rng.random():.3e}", f"{rng.uniform(-1, 1):.17g}", " 2.5"])


def _field(rng: random.Random, dtype: torch.dtype, na: str) -> str:
    """One field as a writer may put it: bare or quoted (always quoted where it must be), or missing."""
    roll = rng.random()
    text = "" if roll < 0.1 else na if roll < 0.15 else _number(rng, dtype) if dtype is not loaders.string \
        else rng.choice(TEXTS)
    must = any(char in text for char in ',"')
    if must or rng.random() < 0.6:
        return '"' + text.replace('"', '""') + '"'
    return text


def _malformed(rng: random.Random, line: str) -> str:
    """``line`` with its quoting broken the way hand-edited files break it."""
    where = rng.randrange(len(line) + 1)
    return rng.choice([
        line[:where] + '"' + line[where:],  # a stray quote
        line.replace('"', "", 1),  # an unbalanced one
        line.replace('",', '"x,', 1),  # text after a closing quote
        line.replace(',"', ', "', 1),  # a space before an opening one
        line.replace('"', '"a\n', 1),  # a line break inside quotes
    ])


def _exact(block: bytes, spec: RecordSpec):
    """The exact decoder's columns for the block's lines (as CSVDataset splits them: at LF, less
    a CR before it), or the error it raises."""
    lines = block.split(b"\n")
    lines = [line[:-1] if line.endswith(b"\r") else line for line in (lines[:-1] if block.endswith(b"\n") else lines)]
    try:
        return decode_lines(lines, spec, lambda i: f"line {i}")
    except loaders.InvalidArgumentError as error:
        return error


def _same(fast, exact) -> None:
    for got, want in zip(fast, exact, strict=True):
        if isinstance(want, list):
            assert got == want
        else:
            assert got.dtype == want.dtype and got.tobytes() == want.tobytes()


def test_fast_decoder_on_quoted_blocks_gives_the_exact_answer_or_declines():
    """Random quoted blocks, well-formed or broken: the fast answer, where given, is the exact one,
    and every block the exact decoder refuses is declined."""
    rng = random.Random(12)
    taken = declined = broken_errors = 0
    for round_ in range(600):
        dtypes = [rng.choice(KINDS) for _ in range(rng.randint(1, 4))]
        columns = [Column(dtype, None if rng.random() < 0.1 else
                          (b"d" if dtype is loaders.string else 1 if dtype in (torch.int32, torch.int64) else 0.5))
                   for dtype in dtypes]
        na = rng.choice(["", "NA", "-1"])
        spec = RecordSpec(columns, num_fields=len(columns), na_value=na.encode())
        newline = rng.choice([b"\n", b"\r\n"])
        lines = [",".join(_field(rng, dtype, na) for dtype in dtypes) for _ in range(rng.randint(1, 25))]
        broken = round_ % 3 == 0
        if broken:
            index = rng.randrange(len(lines))
            lines[index] = _malformed(rng, lines[index])
        block = newline.join(line.encode() for line in lines) + rng.choice([b"", newline])
        fast, exact = decode_block_fast(block, spec), _exact(block, spec)
        if isinstance(exact, loaders.InvalidArgumentError):
            broken_errors += broken and "quote" in str(exact)
            assert fast is None, (block, exact)
        elif fast is None:
            declined += 1
        else:
            taken += 1
            _same(fast, exact)
    assert taken > 200 and broken_errors > 80  # both outcomes are exercised
    assert declined < taken // 20  # and the valid blocks (quoted or not) mostly go through pandas


@pytest.mark.parametrize("block, text", [
    (b'"a,b",1\n"c ""d""",2\n', [b"a,b", b'c "d"']),  # the delimiter and doubled quotes inside quotes
    (b'"",1\n"NA",2\r\n', [b"dflt", b"dflt"]),  # quoted empty and quoted na_value are missing
    (b'"""",1\n"x",""\n', [b'"', b"x"]),  # a field that is one quote; a quoted empty number
])
def test_well_formed_quoted_blocks_take_the_fast_path(block, text):
    spec = RecordSpec([Column(loaders.string, b"dflt"), Column(torch.int32, 9)], num_fields=2, na_value=b"NA")
    fast = decode_block_fast(block, spec)
    assert fast is not None
    _same(fast, _exact(block, spec))
    assert fast[0] == text


@pytest.mark.parametrize("block", [
    b'"a"b,1\n', b'a"b",1\n', b' "a",1\n', b'"a" ,1\n', b'"a,1\n', b'"a\nb",1\n', b'"a""b,1\n',
    b'"a"b",1\n', b'"a"b"c",1\n', b'"a""b",1\n"c"d",2\n',  # a lone quote inside a quoted field
    b'","1"2"\n',  # a field that is one quote, beside a lone quote inside quotes
])
def test_malformed_quotes_are_left_to_the_exact_decoder(block):
    spec = RecordSpec([Column(loaders.string), Column(loaders.string)], num_fields=2)
    assert isinstance(_exact(block, spec), loaders.InvalidArgumentError)
    assert decode_block_fast(block * 3, spec) is None


@pytest.mark.parametrize("writer", ["pandas", "csv module"])
def test_quote_nonnumeric_files_decode_on_the_fast_path_as_the_exact_decoder_does(tmp_path, writer):
    """Files as pandas and Python's csv module write them with QUOTE_NONNUMERIC (pandas quotes
    floats it formats): CSVDataset's result is the exact decoder's, and the block went to pandas."""
    rng = np.random.default_rng(3)
    count = 500
    frame = pd.DataFrame({
        "x": rng.standard_normal(count).astype(np.float32),
        "color": rng.choice(["red", "dark, blue", 'light "green"'], count),
        "note": rng.choice(["", "n/a", 'said "no", twice'], count),
        "label": rng.integers(0, 3, count),
    })
    path = tmp_path / "quoted.csv"
    if writer == "pandas":
        frame.to_csv(path, index=False, quoting=pycsv.QUOTE_NONNUMERIC, float_format="%.9g", lineterminator="\n")
    else:
        with open(path, "w", newline="") as handle:
            out = pycsv.writer(handle, quoting=pycsv.QUOTE_NONNUMERIC, lineterminator="\r\n")
            out.writerow(frame.columns)
            out.writerows(frame.itertuples(index=False))
    dataset = CSVDataset(path, label_column="label", categories={"color": None}, select_columns=["x", "color"],
                         batch_size=128)  # "note" is not read, but its quoted delimiters are not counted
    body = path.read_bytes().split(b"\n", 1)[1]
    assert b'""' in body and b'"said ""no"", twice"' in body
    assert decode_block_fast(body, dataset.spec) is not None  # the fast path answers for the whole file
    exact = _exact(body, dataset.spec)
    batches = list(dataset)
    features = torch.cat([f for f, _ in batches])
    labels = torch.cat([label for _, label in batches])
    x, color, label = exact
    assert torch.equal(features[:, 0], torch.from_numpy(x))
    assert torch.equal(features[:, 1], torch.from_numpy(color.astype(np.float32)))
    assert torch.equal(labels, torch.from_numpy(label))
    assert torch.equal(features[:, 0], torch.tensor(frame["x"].to_numpy()))
    names = sorted(dataset.categories["color"], key=dataset.categories["color"].get)
    assert [names[int(code)] for code in features[:, 1]] == frame["color"].tolist()


def test_a_malformed_quote_in_a_quoted_file_is_the_exact_error(tmp_path):
    """One broken line among QUOTE_NONNUMERIC rows: its chunk is declined and the exact decoder names it."""
    rows = [f'"{i / 7:.5f}","c{i % 3}",{i % 2}' for i in range(3000)]
    rows[2100] = '"0.5"x,"c1",0'
    path = tmp_path / "broken.csv"
    path.write_text('"v","c","label"\n' + "\n".join(rows) + "\n")
    dataset = CSVDataset(path, label_column="label", categories={"c": None}, batch_size=500, chunk_bytes=8192)
    with pytest.raises(loaders.InvalidArgumentError,
                       match=r"broken.csv:2102: malformed quoted field 0: a quote inside quotes must be doubled"):
        list(dataset)
    skipping = CSVDataset(path, label_column="label", categories={"c": None}, on_bad_row="skip", chunk_bytes=8192)
    values = [float(f[0]) for f, _ in skipping]
    assert skipping.bad_rows == 1 and len(values) == 2999
    assert values[2100] == pytest.approx(2101 / 7, abs=1e-5)
