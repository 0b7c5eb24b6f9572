"""decode_csv (TF1 semantics, one record or a batch) and CSVDataset (streaming, sharding, errors)."""
from __future__ import annotations

import csv as pycsv
import logging
import random

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
    with pytest.raises(ValueError, match=r"'color' holds text \(such as \[b'red'\]\)"):
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
    """Unquoted chunks go through pandas, a chunk holding a quote through the exact decoder."""
    rng = random.Random(5)
    rows = [f"{i},{rng.uniform(-5, 5):.5f},{'' if i % 7 == 0 else rng.randint(0, 9)}" for i in range(3000)]
    rows[2500] = f'2500,"{rng.uniform(-5, 5):.5f}",4'
    path = _write(tmp_path / "g.csv", "id,v,w", rows)
    dataset = CSVDataset(path, [[0], [0.0], [-1]], label_column="id", batch_size=1000, chunk_bytes=8192)
    features = torch.cat([f for f, _ in dataset])
    expected = [[float(r.split(",")[1].strip('"')), float(r.split(",")[2] or -1)] for r in rows]
    assert torch.equal(features, torch.tensor(expected, dtype=torch.float32))
