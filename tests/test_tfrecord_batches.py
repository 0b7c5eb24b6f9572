"""Batch types: RaggedBytes and RaggedTensor read like the lists they replace and cross as a few tensors."""
from __future__ import annotations

import copy
import io
import pickle
from multiprocessing.reduction import ForkingPickler

import pytest
import torch
from torch.utils.data import default_collate
from torch.utils.data._utils.collate import default_convert

from loaders.errors import InvalidArgumentError
from loaders.tfrecord import RaggedBytes, RaggedTensor, collate_lists, collate_padded, collate_ragged
from loaders.tfrecord.batches import ragged_column, share_batch

ROWS = [b"first", b"", b"\x00\xff third"]


def test_ragged_bytes_reads_like_the_list_of_bytes():
    strings = RaggedBytes.from_rows(ROWS)
    assert len(strings) == 3 and strings[0] == b"first" and strings[-1] == ROWS[-1] and strings[1] == b""
    assert list(strings) == ROWS and strings.tolist() == ROWS and strings == ROWS and strings == tuple(ROWS)
    assert strings != ROWS[:2] and strings != [b"first", b"x", ROWS[2]] and strings != "first"
    assert strings[1:] == ROWS[1:] and strings[::2] == ROWS[::2] and strings[5:] == [] and strings[-2:-1] == [b""]
    assert strings.values.dtype == torch.uint8 and strings.values.tolist() == list(b"".join(ROWS))
    assert strings.row_splits.tolist() == [0, 5, 5, 13] and strings.row_lengths().tolist() == [5, 0, 8]
    assert b"".join(strings) == b"".join(ROWS) and [type(s) for s in strings] == [bytes] * 3
    with pytest.raises(IndexError, match="row 3 is out of range for 3 rows"):
        strings[3]
    with pytest.raises(TypeError, match="indices must be integers or slices, not str"):
        strings["a"]
    assert "first" in repr(strings) and "rows=3" in repr(strings)
    with pytest.raises(TypeError):
        hash(strings)


def test_ragged_bytes_accepts_bytes_likes_and_refuses_other_rows():
    assert RaggedBytes.from_rows([bytearray(b"ab"), memoryview(b"cd")]) == [b"ab", b"cd"]
    wide = memoryview(torch.tensor([1, 2], dtype=torch.int32).numpy())  # len() counts elements, not bytes
    assert RaggedBytes.from_rows([wide, b"x"])[0] == bytes(wide)
    assert RaggedBytes.from_rows([]) == [] and len(RaggedBytes.from_rows([])) == 0
    with pytest.raises(TypeError, match="row 1 is a str, expected bytes"):
        RaggedBytes.from_rows([b"a", "b"])
    with pytest.raises(InvalidArgumentError, match="values must be a 1-D uint8 tensor, got a torch.int64 tensor"):
        RaggedBytes(torch.zeros(3, dtype=torch.int64), torch.tensor([0, 3]))
    with pytest.raises(InvalidArgumentError, match="row_splits must be a 1-D int64 tensor"):
        RaggedBytes(torch.zeros(3, dtype=torch.uint8), torch.tensor([0.0, 3.0]))
    assert RaggedBytes.from_row_splits(torch.tensor(list(b"abc"), dtype=torch.uint8), [0, 1, 3]) == [b"a", b"bc"]


def test_ragged_types_pickle_as_their_tensors():
    strings = RaggedBytes.from_rows(ROWS)
    again = pickle.loads(pickle.dumps(strings))
    assert again == strings and type(again) is RaggedBytes and copy.deepcopy(strings) == ROWS
    ragged = RaggedTensor.from_rows([torch.arange(3), torch.arange(1)])
    assert pickle.loads(pickle.dumps(ragged)) == ragged
    # what DataLoader workers do: only the two tensors cross, no bytes object per row
    stream = io.BytesIO()
    ForkingPickler(stream).dump(RaggedBytes.from_rows([b"x" * 1000] * 50))
    assert len(stream.getvalue()) < 1000


def test_ragged_tensor_reads_like_the_list_of_rows():
    rows = [torch.tensor([1, 2, 3]), torch.tensor([], dtype=torch.int64), torch.tensor([4])]
    ragged = RaggedTensor.from_rows(rows)
    assert len(ragged) == 3 and torch.equal(ragged[0], rows[0]) and torch.equal(ragged[-1], rows[2])
    assert ragged == rows and ragged == [[1, 2, 3], [], [4]] and ragged != [[1, 2, 3], [], [5]]
    assert ragged.tolist() == [[1, 2, 3], [], [4]] and ragged[1:].tolist() == [[], [4]]
    assert ragged.values.tolist() == [1, 2, 3, 4] and ragged.row_splits.tolist() == [0, 3, 3, 4]
    assert ragged.to_tensor().tolist() == [[1, 2, 3], [0, 0, 0], [4, 0, 0]]
    assert ragged[1:].to_tensor(-1).tolist() == [[-1], [4]]
    doubles = ragged.to(torch.float64)
    assert doubles.values.dtype == torch.float64 and doubles.row_splits.dtype == torch.int64
    matrix = RaggedTensor.from_rows([torch.ones(2, 3), torch.zeros(1, 3)])
    assert matrix.to_tensor().shape == (2, 2, 3) and matrix[1].shape == (1, 3)
    with pytest.raises(InvalidArgumentError, match=r"rows of shapes \[\(1, 2\), \(2, 3\)\]: only the first dimension"):
        RaggedTensor.from_rows([torch.ones(2, 3), torch.ones(1, 2)])
    assert RaggedTensor.from_rows([[1.5], [2.5, 3.5]]).values.tolist() == [1.5, 2.5, 3.5]
    assert RaggedTensor.from_rows([]) == [] and RaggedTensor.from_rows([]).to_tensor().shape == (0, 0)


def test_ragged_tensor_of_byte_strings():
    ragged = RaggedTensor.from_rows([[b"a", b"bc"], [], [b"d"]])
    assert isinstance(ragged.values, RaggedBytes) and ragged.values == [b"a", b"bc", b"d"]
    assert ragged == [[b"a", b"bc"], [], [b"d"]] and ragged.tolist() == [[b"a", b"bc"], [], [b"d"]]
    assert ragged[0] == [b"a", b"bc"] and ragged[2][0] == b"d"
    with pytest.raises(InvalidArgumentError, match="byte strings cannot be padded"):
        ragged.to_tensor()
    assert pickle.loads(pickle.dumps(ragged)) == ragged


def test_dataloader_helpers_pass_them_through_whole():
    batch = {"image": RaggedBytes.from_rows(ROWS), "tokens": RaggedTensor.from_rows([torch.arange(2)])}
    converted = default_convert(batch)  # what DataLoader(batch_size=None) applies to each batch
    assert type(converted["image"]) is RaggedBytes and type(converted["tokens"]) is RaggedTensor


def test_share_batch_puts_every_tensor_in_one_shared_block():
    batch = {"image": RaggedBytes.from_rows(ROWS), "label": torch.arange(4), "floats": torch.rand(4, 3),
             "nested": [torch.ones(2, dtype=torch.bool), (torch.tensor(7.0),)], "name": "kept"}
    shared = share_batch(batch)
    tensors = [shared["image"].values, shared["image"].row_splits, shared["label"], shared["floats"],
               shared["nested"][0], shared["nested"][1][0]]
    assert len({t.untyped_storage().data_ptr() for t in tensors}) == 1 and tensors[0].is_shared()
    assert shared["image"] == ROWS and torch.equal(shared["floats"], batch["floats"])
    assert shared["nested"][0].dtype == torch.bool and shared["nested"][1] == (torch.tensor(7.0),)
    assert shared["name"] == "kept" and type(shared["nested"][1]) is tuple
    stream = io.BytesIO()
    ForkingPickler(stream).dump(shared)
    assert stream.getvalue().count(b"rebuild_storage_fd") + stream.getvalue().count(b"rebuild_storage_filename") == 1


def test_ragged_column_turns_lists_into_ragged_types():
    assert type(ragged_column([b"a", b"b"])) is RaggedBytes
    assert type(ragged_column([torch.arange(2), torch.arange(1)])) is RaggedTensor
    assert type(ragged_column([[b"a"], []])) is RaggedTensor
    assert ragged_column([[[b"a"]]]) == [[[b"a"]]] and ragged_column([b"a", 1]) == [b"a", 1]
    assert ragged_column([]) == [] and torch.equal(ragged_column(torch.ones(2)), torch.ones(2))


def test_collate_ragged_is_default_collate_with_ragged_columns():
    records = [{"x": torch.tensor(i), "b": bytes([i]) * i, "v": torch.arange(i), "pair": (i, float(i))} for i in range(3)]
    batch = collate_ragged(records)
    expected = default_collate([{k: r[k] for k in ("x", "pair")} for r in records])
    assert torch.equal(batch["x"], expected["x"]) and all(torch.equal(a, b) for a, b in zip(batch["pair"], expected["pair"]))
    assert type(batch["b"]) is RaggedBytes and batch["b"] == [b"", b"\x01", b"\x02\x02"]
    assert type(batch["v"]) is RaggedTensor and batch["v"] == [[], [0], [0, 1]]
    assert collate_ragged([b"ab", b"c"]) == [b"ab", b"c"] and collate_ragged(["s", "t"]) == ["s", "t"]
    with pytest.raises(InvalidArgumentError, match="only the first dimension may vary"):
        collate_ragged([torch.ones(2, 3), torch.ones(2, 2)])
    with pytest.raises(RuntimeError):  # not a matter of lengths: default_collate's own error
        collate_ragged([torch.ones(2), torch.ones(2, device="meta")])


def test_collate_padded_and_lists_give_byte_strings_as_ragged_bytes():
    records = [{"b": b"x" * i, "v": torch.arange(i)} for i in range(3)]
    padded, lists = collate_padded(records), collate_lists(records)
    assert type(padded["b"]) is RaggedBytes and padded["b"] == [b"", b"x", b"xx"] == lists["b"]
    assert padded["v"].tolist() == [[0, 0], [0, 0], [0, 1]] and padded["v_length"].tolist() == [0, 1, 2]
    assert [t.tolist() for t in lists["v"]] == [[], [0], [0, 1]]


def test_collate_stacks_into_the_memory_a_worker_provides(monkeypatch):
    from loaders.tfrecord import batches

    made = []

    def allocate(shape: tuple, dtype: torch.dtype) -> torch.Tensor:
        made.append(torch.empty(shape, dtype=dtype))
        return made[-1]

    monkeypatch.setattr(batches, "allocate_for_transfer", allocate)
    records = [{"x": torch.full((2,), i), "f": torch.tensor(float(i)), "b": bytes([i])} for i in range(3)]
    for collate in (collate_ragged, collate_padded, collate_lists):
        made.clear()
        batch = collate(records)
        assert [tuple(t.shape) for t in made] == [(3, 2), (3,), (3,)]
        assert batch["x"].data_ptr() == made[0].data_ptr() and batch["x"].tolist() == [[0, 0], [1, 1], [2, 2]]
        assert batch["f"].data_ptr() == made[1].data_ptr() and batch["f"].tolist() == [0.0, 1.0, 2.0]
        assert batch["b"].values.data_ptr() == made[2].data_ptr() and batch["b"] == [b"\x00", b"\x01", b"\x02"]
    made.clear()  # mixed dtypes: torch.stack's own promotion, in memory of its own
    mixed = collate_ragged([torch.tensor([1.0]), torch.tensor([2.5], dtype=torch.float64)])
    assert made == [] and mixed.dtype == torch.float64 and mixed.tolist() == [[1.0], [2.5]]
    ragged = collate_ragged([torch.ones(2), torch.ones(3)])  # what stacking refuses falls back as before
    assert type(ragged) is RaggedTensor and ragged == [[1, 1], [1, 1, 1]]
    graded = collate_ragged([torch.ones(2), torch.ones(2, requires_grad=True)])
    assert graded.requires_grad and graded.data_ptr() not in {t.data_ptr() for t in made}
    monkeypatch.setattr(batches, "allocate_for_transfer", None)
    assert torch.equal(collate_ragged(records)["x"], torch.stack([r["x"] for r in records]))
