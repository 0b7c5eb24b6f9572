"""decode_csv (TF1 semantics, one record or a batch) and CSVDataset (streaming, sharding, errors)."""
from __future__ import annotations

import csv as pycsv
import logging
import random

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import loaders
from loaders import CSVDataset, decode_csv
from loaders.sharding import Shard

HEART_LINE = b"144,0.01,4.41,28.61,Absent,55,28.87,2.06,63,1"  # the lecture's first heart.csv row
HEART_DEFAULTS = [[0.0], [0.0], [0.0], [0.0], [""], [0.0], [0.0], [0.0], [0.0], [0]]
HEART_HEADER = "sbp,tobacco,ldl,adiposity,famhist,typea,obesity,alcohol,age,chd"


# ---------------------------------------------------------------- decode_csv


def test_decode_csv_lecture_line_gives_one_value_per_column():
    content = decode_csv(HEART_LINE, record_defaults=HEART_DEFAULTS)
    assert len(content) == 10
    assert content[0].dtype == torch.float32 and content[0].shape == () and content[0].item() == 144.0
    assert content[1].item() == pytest.approx(0.01)
    assert content[4] == b"Absent"
    assert content[9].dtype == torch.int32 and content[9].item() == 1


def test_empty_field_takes_default_and_na_value_too():
    values = decode_csv("1,,x,NA", [[5.0], [7], [""], [2.5]], na_value="NA")
    assert [values[0].item(), values[1].item(), values[2], values[3].item()] == [1.0, 7, b"x", 2.5]


@pytest.mark.parametrize(
    "record, defaults, fragment",
    [
        (b"1,,3", [[1.0], [], [1.0]], "column 1 is required but missing"),
        (b"1,2,3", [[1.0], [torch.int64], [1.0]], None),
        (b"1,abc,3", [[1.0], [1.0], [1.0]], "column 1 is not a valid float32: 'abc'"),
        (b"1,2.5,3", [[1.0], [0], [1.0]], "column 1 is not a valid int32: '2.5'"),
        (b"1,99999999999,3", [[1.0], [0], [1.0]], "column 1 is not a valid int32"),
        (b"1,2", [[1.0], [1.0], [1.0]], "expected 3 fields but found 2"),
        (b"1,2,3,4", [[1.0], [1.0], [1.0]], "expected 3 fields but found 4"),
        (b'1,"2,3', [[1.0], [""], [1.0]], "malformed quoted field"),
        (b'1,"2"x,3', [[1.0], [""], [1.0]], "malformed quoted field"),
    ],
)
def test_bad_records_raise_value_error_naming_column_and_text(record, defaults, fragment):
    if fragment is None:
        assert decode_csv(record, defaults)[1].dtype == torch.int64
        return
    with pytest.raises(ValueError, match="record 0") as info:
        decode_csv(record, defaults)
    assert fragment in str(info.value)
    assert record.decode() in str(info.value)


def test_quoted_fields_hold_delimiter_and_doubled_quotes():
    values = decode_csv(b'"a,b",2,"say ""hi""",""', [[""], [0], [""], ["dflt"]])
    assert values[0] == b"a,b" and values[1].item() == 2 and values[2] == b'say "hi"'
    assert values[3] == b"dflt"  # a quoted empty field is empty


def test_quotes_are_plain_text_without_use_quote_delim():
    assert decode_csv(b'"a,b"', [[""], [""]], use_quote_delim=False) == [b'"a', b'b"']


def test_field_delim_and_select_cols():
    values = decode_csv(b"a;b;3;4.5", [[""], [0.0]], field_delim=";", select_cols=[1, 3])
    assert values[0] == b"b" and values[1].item() == 4.5
    with pytest.raises(ValueError, match="select_cols"):
        decode_csv(b"a;b", [[""], [""]], field_delim=";", select_cols=[1, 0])
    with pytest.raises(ValueError, match="field_delim"):
        decode_csv(b"a", [[""]], field_delim=",,")


def test_record_defaults_forms_and_types():
    values = decode_csv(
        b"1,2,3,4,5", [[], [torch.int64], torch.float64, torch.tensor([7], dtype=torch.int64), 2.5]
    )
    assert [v.dtype for v in values] == [torch.float32, torch.int64, torch.float64, torch.int64, torch.float32]
    with pytest.raises(TypeError, match=r"record_defaults\[0\]"):  # TF: TypeError (bool not allowed)
        decode_csv(b"1", [[True]])
    with pytest.raises(TypeError, match="unsupported type"):
        decode_csv(b"1", [[torch.bool]])


def test_batch_of_records_gives_1d_tensors_and_byte_lists():
    ints, names = decode_csv([b"1,a", "2,b", b"3,"], [[0], ["z"]])
    assert ints.tolist() == [1, 2, 3] and ints.dtype == torch.int32
    assert names == [b"a", b"b", b"z"]


def _random_records(count, seed):
    rng = random.Random(seed)
    records = []
    for index in range(count):
        value = "" if rng.random() < 0.1 else f"{rng.uniform(-1e3, 1e3):.6g}"
        records.append(f"{index},{value},{rng.choice(['x', 'yy', ''])},{rng.randint(-5, 5)}".encode())
    return records


def test_large_batch_matches_record_by_record_decoding():
    """A large batch goes through the C parser; its values equal the exact path's."""
    defaults = [[torch.int64], [-1.0], ["none"], [0]]
    records = _random_records(500, seed=3)
    whole = decode_csv(records, defaults)
    one_by_one = [decode_csv(record, defaults) for record in records]
    for column in range(4):
        expected = [row[column] for row in one_by_one]
        if column == 2:
            assert whole[2] == expected
        else:
            assert torch.equal(whole[column], torch.stack(expected))


def test_bad_record_in_large_batch_is_named_by_index():
    records = [b"%d,1.5" % i for i in range(300)]
    records[217] = b"217,oops"
    with pytest.raises(ValueError, match=r"record 217: column 1 is not a valid float32: 'oops'"):
        decode_csv(records, [[0], [0.0]])


# ---------------------------------------------------------------- CSVDataset


def _write(path, header, rows, newline="\n"):
    path.write_text(newline.join([header, *rows]) + newline)
    return path


def _heart_rows(count, seed=1):
    rng = random.Random(seed)
    return [
        f"{100 + i},{rng.random():.3f},4.4,28.6,{rng.choice(['Present', 'Absent'])},55,28.9,2.1,{20 + i % 40},{i % 2}"
        for i in range(count)
    ]


def test_dataset_yields_features_and_label_like_the_lecture(tmp_path):
    path = _write(tmp_path / "heart.csv", HEART_HEADER, [HEART_LINE.decode()])
    dataset = CSVDataset(path, label_column="chd", categories={"famhist": {"Present": 1, "Absent": 0}})
    assert dataset.feature_names == HEART_HEADER.split(",")[:9]
    ((features, label),) = list(dataset)
    assert features.dtype == torch.float32
    assert features.tolist() == pytest.approx([144, 0.01, 4.41, 28.61, 0, 55, 28.87, 2.06, 63])
    assert label.dtype == torch.int64 and label.item() == 1


def test_dataset_reads_the_shipped_heart_sample():
    from pathlib import Path

    sample = Path(__file__).resolve().parents[1] / "examples" / "data" / "heart_sample.csv"
    dataset = CSVDataset(sample, label_column="chd", categories=["famhist"])
    rows = list(csv_rows(sample))
    got = list(dataset)
    assert len(got) == len(rows)
    assert dataset.categories == {"famhist": {"Absent": 0, "Present": 1}}  # learned, sorted
    for (features, label), row in zip(got, rows):
        assert features[4].item() == (1.0 if row["famhist"] == "Present" else 0.0)
        assert features[0].item() == float(row["sbp"]) and label.item() == int(row["chd"])


def csv_rows(path):
    with open(path, newline="") as handle:
        yield from pycsv.DictReader(handle)


def test_batches_equal_rows_and_last_batch_is_smaller(tmp_path):
    path = _write(tmp_path / "h.csv", HEART_HEADER, _heart_rows(50))
    kwargs = dict(label_column="chd", categories=["famhist"], chunk_bytes=300)
    rows = list(CSVDataset(path, **kwargs))
    batches = list(CSVDataset(path, batch_size=16, **kwargs))
    assert [len(labels) for _, labels in batches] == [16, 16, 16, 2]
    assert torch.equal(torch.cat([f for f, _ in batches]), torch.stack([f for f, _ in rows]))
    assert torch.equal(torch.cat([l for _, l in batches]), torch.stack([l for _, l in rows]))


def _id_files(tmp_path, sizes):
    paths, next_id = [], 0
    for number, size in enumerate(sizes):
        rows = [f"{next_id + i},{(next_id + i) * 0.5}" for i in range(size)]
        paths.append(_write(tmp_path / f"part{number}.csv", "id,value", rows))
        next_id += size
    return paths, next_id


def test_every_row_once_with_two_dataloader_workers(tmp_path):
    paths, total = _id_files(tmp_path, [300, 5, 700])
    dataset = CSVDataset(str(tmp_path / "part*.csv"), label_column="id", chunk_bytes=256)
    loader = DataLoader(dataset, batch_size=32, num_workers=2)
    ids = torch.cat([labels for _, labels in loader]).tolist()
    assert sorted(ids) == list(range(total))


def test_shards_split_the_rows(tmp_path, monkeypatch):
    paths, total = _id_files(tmp_path, [400, 400])
    seen = []
    for index in range(3):
        monkeypatch.setattr(loaders.csv_dataset, "current_shard", lambda index=index: Shard(index, 3))
        seen.append([int(label) for _, label in CSVDataset(paths, label_column="id", chunk_bytes=500)])
    assert all(seen) and sorted(sum(seen, [])) == list(range(total))


def test_bad_row_names_file_and_line(tmp_path):
    rows = [f"{i},{i}.5" for i in range(2000)]
    rows[1500] = "1500,not-a-number"
    path = _write(tmp_path / "bad.csv", "id,value", rows)
    with pytest.raises(ValueError, match=r"bad.csv:1502: column 1 \('value'\) is not a valid float32: 'not-a-number'"):
        list(CSVDataset(path, label_column="id", chunk_bytes=1024))


def test_skip_bad_rows_counts_and_logs(tmp_path, caplog):
    rows = [f"{i},{i}.5" for i in range(100)]
    rows[10], rows[60] = "10,x", "60"
    path = _write(tmp_path / "bad.csv", "id,value", rows)
    dataset = CSVDataset(path, [[0], [0.0]], label_column="id", on_bad_row="skip")
    with caplog.at_level(logging.WARNING, logger="loaders.csv_dataset"):
        ids = [int(label) for _, label in dataset]
    assert dataset.bad_rows == 2
    assert ids == [i for i in range(100) if i not in (10, 60)]
    assert "bad.csv:12" in caplog.text and "bad.csv:62" in caplog.text and "expected 2 fields" in caplog.text


def test_select_columns_defaults_and_quoted_crlf_blank_lines(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_bytes(b'name,x,y,label\r\n"a, quoted",1,,0\r\n\r\nb,2,3.5,1\r\n')
    dataset = CSVDataset(path, {"y": [-1.0]}, select_columns=["y", 1], label_column="label")
    assert dataset.feature_names == ["y", "x"]
    assert [(f.tolist(), int(l)) for f, l in dataset] == [([-1.0, 1.0], 0), ([3.5, 2.0], 1)]


def test_unknown_category_and_unmapped_text_columns(tmp_path):
    path = _write(tmp_path / "c.csv", "color,label", ["red,1", "blue,0", "green,1"])
    with pytest.raises(ValueError, match="c.csv:4: column 0 \\('color'\\) has unknown category 'green'"):
        list(CSVDataset(path, label_column="label", categories={"color": {"red": 0, "blue": 1}}))
    with pytest.raises(ValueError, match=r"'color' holds text \(such as 'red' at .*c.csv:2\)"):
        CSVDataset(path, label_column="label")


def test_header_mismatch_missing_file_and_no_header(tmp_path):
    _write(tmp_path / "a.csv", "x,y", ["1,2"])
    _write(tmp_path / "b.csv", "x,z", ["3,4"])
    with pytest.raises(ValueError, match="b.csv:1: header"):
        list(CSVDataset([tmp_path / "a.csv", tmp_path / "b.csv"]))
    with pytest.raises(FileNotFoundError):
        CSVDataset(tmp_path / "missing.csv")
    with pytest.raises(FileNotFoundError):
        CSVDataset(str(tmp_path / "none*.csv"))
    (tmp_path / "plain.csv").write_text("1,2\n3,4\n")
    dataset = CSVDataset(tmp_path / "plain.csv", header=False, column_names=["p", "q"], label_column="q")
    assert [(f.tolist(), int(l)) for f, l in dataset] == [([1.0], 2), ([3.0], 4)]


def test_fast_and_exact_paths_agree_on_a_generated_file(tmp_path):
    """Chunks with and without a quoted field all go through pandas and give the exact values."""
    rng = random.Random(5)
    rows = [f"{i},{rng.uniform(-5, 5):.5f},{'' if i % 7 == 0 else rng.randint(0, 9)}" for i in range(3000)]
    rows[2500] = f'2500,"{rng.uniform(-5, 5):.5f}",4'
    path = _write(tmp_path / "g.csv", "id,v,w", rows)
    dataset = CSVDataset(path, [[0], [0.0], [-1]], label_column="id", batch_size=1000, chunk_bytes=8192)
    features = torch.cat([f for f, _ in dataset])
    expected = [[float(r.split(",")[1].strip('"')), float(r.split(",")[2] or -1)] for r in rows]
    assert torch.equal(features, torch.tensor(expected, dtype=torch.float32))


# ---------------------------------------------------------------- TF's rules, whatever the batch size


def _both_paths(records, defaults, **kwargs):
    """decode_csv on the records alone (exact decoder) and repeated 150 times (fast decoder first)."""
    one = decode_csv(records, defaults, **kwargs)
    many = decode_csv(list(records) * 150, defaults, **kwargs)
    return one, many


@pytest.mark.parametrize("records, defaults, fragment", [
    ([b""], [[0]], "expected 1 fields but found 0"),
    ([b"1,2\r"], [[0], [0]], "cannot hold a quote, CR or LF"),
    ([b"1,a\nb"], [[0], [""]], "cannot hold a quote, CR or LF"),
    ([b"3.0"], [[0]], "is not a valid int32: '3.0'"),
    ([b"1e3"], [[torch.int64]], "is not a valid int64: '1e3'"),
    ([b"9223372036854775808"], [[torch.int64]], "column 0 is not a valid int64: '9223372036854775808'"),
    ([b'a"b'], [[""]], "cannot hold a quote"),
    ([b"1e"], [[0.0]], "is not a valid float32: '1e'"),
])
def test_bad_record_is_the_same_error_in_one_record_or_many(records, defaults, fragment):
    for batch in (records, records * 150):
        with pytest.raises(loaders.InvalidArgumentError, match="decode_csv: record 0: ") as info:
            decode_csv(batch, defaults)
        assert fragment in str(info.value)


def test_numbers_follow_tf_syntax_in_both_decoders():
    records = [b"0x1.8p1,0x10,-0x10, 12 ,+7", b"1.0000000596046447753906251,1e-400,inf,-0,010", b"nan(1),.5,5.,\t3\t,-2"]
    defaults = [[0.0], np.zeros(0, np.float64), [0.0], [0], [0]]
    for out in _both_paths(records, defaults):
        assert out[0][:3].tolist() == [3.0, 1.0000001192092896, pytest.approx(float("nan"), nan_ok=True)]
        assert out[1][:3].tolist() == [16.0, 0.0, 0.5] and out[1].dtype == torch.float64
        assert out[2][:3].tolist() == [-16.0, float("inf"), 5.0]
        assert out[3][:3].tolist() == [12, 0, 3] and out[4][:3].tolist() == [7, 10, -2]


def test_float32_is_rounded_once_from_the_text():
    # 1 + 2**-24 is halfway between two float32s; a digit more makes it round up (strtof), while
    # reading a float64 first lands exactly halfway and rounds down to 1.0
    text = b"1.0000000596046447753906251"
    assert float(np.float32(float(text))) == 1.0
    one, many = _both_paths([text, b"16777217", b"0x1.0000010000000000001p0"], [[0.0]])
    assert one[0].tolist() == many[0][:3].tolist() == [1.0000001192092896, 16777216.0, 1.0000001192092896]


def test_records_of_any_shape_give_outputs_of_that_shape():
    ints, names = decode_csv([[b"1,a", b"2,b"], [b"3,c", b"4,"]], [[0], ["z"]])
    assert ints.shape == (2, 2) and ints.tolist() == [[1, 2], [3, 4]]
    assert names == [[b"a", b"b"], [b"c", b"z"]]
    assert decode_csv(np.array([[b"5"], [b"6"]], dtype=object), [[0.0]])[0].shape == (2, 1)
    assert decode_csv([], [[0]])[0].shape == (0,)
    with pytest.raises(ValueError, match="rectangular"):
        decode_csv([[b"1"], [b"2", b"3"]], [[0]])
    with pytest.raises(TypeError, match="bytes or str"):
        decode_csv([1, 2], [[0]])


def test_defaults_take_tf_types():
    big, small = decode_csv(b",", [[2**40], [0]])
    assert big.dtype == torch.int64 and big.item() == 2**40 and small.dtype == torch.int32
    with pytest.raises(TypeError, match="does not fit int64"):
        decode_csv(b"1", [[2**63]])
    with pytest.raises(TypeError, match="must be a list"):
        decode_csv(b"1,2", np.zeros(2))
    with pytest.raises(ValueError, match="one value"):
        decode_csv(b"1", [[1, 2]])


def test_error_messages_quote_a_short_excerpt_of_a_huge_field():
    huge = b"x" * (40 << 20)
    for record, defaults in [(b"1," + huge, [[0], [0.0]]), (b'"' + huge, [[""]]), (huge + b'"', [[""]])]:
        with pytest.raises(loaders.InvalidArgumentError, match="bytes\\)") as info:  # "... (41943042 bytes)"
            decode_csv(record, defaults)
        assert len(str(info.value)) < 500


_ATOMS = ["1", "-2", "+3", " 4 ", "007", "3.0", "1e3", "1.5", ".5", "5.", "-0", "1e", "0x10", "inf", "-inf", "nan",
          "NaN", "", "NA", "-1", "x", " ", "1_0", "9223372036854775808", "2147483648", "16777217", "1e-40",
          "1.0000000596046447753906251", "3.4028236e38", "1e400", "\u00e9", "\x00", "\ufeff1"]


def _fuzz_value(rng, dtype):
    if rng.random() < 0.15:
        return rng.choice(_ATOMS)
    if dtype in (torch.int32, torch.int64):
        return str(rng.randint(-10**6, 10**6))
    if dtype == torch.float32 or dtype == torch.float64:
        return rng.choice([f"{rng.gauss(0, 100):.6g}", f"{rng.uniform(-1, 1):.17g}", f"{rng.random():.3e}"])
    return rng.choice(["a", "bb", "ccc", "d d"])


def test_fast_decoder_gives_the_exact_answer_or_declines():
    """Random blocks of awkward text: wherever pandas' answer is taken it equals the exact decoder's."""
    from loaders.csv_fast import decode_block_fast
    from loaders.csv_parse import Column, RecordSpec, decode_lines

    rng = random.Random(11)
    kinds = [torch.float32, torch.float64, torch.int32, torch.int64, loaders.string]
    taken = declined = 0
    for _ in range(500):
        dtypes = [rng.choice(kinds) for _ in range(rng.randint(1, 4))]
        columns = [Column(dtype, None if rng.random() < 0.3 else
                          (b"d" if dtype is loaders.string else 1 if dtype in (torch.int32, torch.int64) else 0.5))
                   for dtype in dtypes]
        na = rng.choice([b"", b"NA", b"-1", b"nan"])
        spec = RecordSpec(columns, num_fields=len(columns), na_value=na)
        newline = rng.choice([b"\n", b"\r\n"])
        lines = [",".join(_fuzz_value(rng, dtype) for dtype in dtypes).encode() for _ in range(rng.randint(1, 30))]
        if rng.random() < 0.1:  # one line with a field too many, another with one too few
            lines[rng.randrange(len(lines))] += b",1"
            lines[rng.randrange(len(lines))] = lines[0].rpartition(b",")[0]
        block = newline.join(lines) + rng.choice([b"", newline])
        fast = decode_block_fast(block, spec)
        if fast is None:
            declined += 1
            continue
        taken += 1
        lines = block.split(newline)  # the block's own lines
        lines = lines[:-1] if block.endswith(newline) else lines
        exact = decode_lines(lines, spec, lambda i: f"line {i}")  # must not raise where fast answered
        for got, want in zip(fast, exact):
            if isinstance(want, list):
                assert got == want
            else:
                assert got.dtype == want.dtype and got.tobytes() == want.tobytes()
    assert taken > 80 and declined > 50  # both outcomes are exercised


# ---------------------------------------------------------------- CSVDataset: bad rows, wherever they are


def test_rows_with_too_many_and_too_few_fields_are_bad_rows_even_when_unselected(tmp_path):
    path = _write(tmp_path / "ragged.csv", "x,y", ["1,2", "3,4,5", "6"] + [f"{i},{i}" for i in range(300)])
    with pytest.raises(loaders.InvalidArgumentError, match="ragged.csv:3: expected 2 fields but found 3"):
        list(CSVDataset(path, select_columns=["x"], batch_size=64))
    skipping = CSVDataset(path, select_columns=["x"], on_bad_row="skip", batch_size=64)
    assert torch.cat(list(skipping)).shape == (301, 1) and skipping.bad_rows == 2


def test_bad_rows_among_the_inferred_rows_are_named_or_skipped(tmp_path):
    rows = [f"{i},{i}.5" for i in range(20)]
    rows[1], rows[2], rows[4] = '1,"2.5', "2", "4,1e"  # malformed quotes, too few fields, a typo
    path = _write(tmp_path / "early.csv", "id,value", rows)
    dataset = CSVDataset(path, label_column="id")  # the three rows are among the 1000 sampled ones
    assert dataset.spec.columns[1].dtype == torch.float32  # the typo does not make the column text
    with pytest.raises(loaders.InvalidArgumentError, match=r"early.csv:3: malformed quoted field 1"):
        list(dataset)
    skipping = CSVDataset(path, label_column="id", on_bad_row="skip")
    assert [int(label) for _, label in skipping] == [i for i in range(20) if i not in (1, 2, 4)]
    assert skipping.bad_rows == 3


def test_typo_in_a_numeric_column_is_reported_as_that_cell(tmp_path):
    path = _write(tmp_path / "typo.csv", "id,value", ["1,1.5", "2,1e", "3,2.5"])
    with pytest.raises(loaders.InvalidArgumentError, match=r"typo.csv:3: column 1 \('value'\) is not a valid float32: '1e'"):
        list(CSVDataset(path, label_column="id"))
    ints = _write(tmp_path / "ints.csv", "id,count", ["1,4", "2,5", "3,x7"])
    with pytest.raises(loaders.InvalidArgumentError, match=r"ints.csv:4: column 1 \('count'\) is not a valid int64: 'x7'"):
        list(CSVDataset(ints, label_column="id"))
    text = _write(tmp_path / "text.csv", "id,size", ["1,S", "2,M", "3,10"])  # mostly text: a text column
    with pytest.raises(ValueError, match=r"'size' holds text \(such as 'S' at .*text.csv:2\)"):
        CSVDataset(text, label_column="id")


def test_invalid_utf8_in_a_categorical_column_names_the_line(tmp_path):
    path = tmp_path / "colors.csv"
    path.write_bytes(b"color,label\nred,1\n\xffblue,0\ngreen,1\n")
    with pytest.raises(loaders.InvalidArgumentError, match=r"colors.csv:3: categorical column 0 is not valid UTF-8 \(byte 0\)"):
        CSVDataset(path, label_column="label", categories=["color"])
    mapped = CSVDataset(path, label_column="label", categories={"color": {"red": 0, "blue": 1, "green": 2}})
    with pytest.raises(loaders.InvalidArgumentError, match=r"colors.csv:3: column 0 \('color'\) is not valid UTF-8"):
        list(mapped)
    learned = CSVDataset(path, label_column="label", categories=["color"], on_bad_row="skip")
    assert learned.categories == {"color": {"green": 0, "red": 1}}
    assert [int(label) for _, label in learned] == [1, 1] and learned.bad_rows == 1


def test_dataset_errors_quote_a_short_excerpt(tmp_path):
    huge = "9" * 50 + "x" * (5 << 20)
    path = _write(tmp_path / "huge.csv", "id,value,color", ["1,1.5,red", "2,0.5,red", f"3,{huge},red", f'4,2.5,"{huge}'])
    for column, line in (("value", 4), ("color", 5)):  # a huge number, then a huge unterminated quote
        with pytest.raises(loaders.InvalidArgumentError, match=f"huge.csv:{line}") as info:
            list(CSVDataset(path, label_column="id", select_columns=[column], categories={"color": {"red": 0}}
                            if column == "color" else None))
        assert len(str(info.value)) < 1000
    unknown = _write(tmp_path / "unknown.csv", "color,label", ["red,1", f"{huge},0"])
    with pytest.raises(loaders.InvalidArgumentError, match="unknown category") as info:
        list(CSVDataset(unknown, label_column="label", categories={"color": {"red": 0}}))
    assert len(str(info.value)) < 1000
