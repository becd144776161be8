import pytest

from model_api.clip.tokenizer import BOS, EOS, PAD, ByteTokenizer


@pytest.fixture
def tokenizer() -> ByteTokenizer:
    return ByteTokenizer(context_length=16)


@pytest.mark.parametrize("text", ["a photo of a cat.", "Ünïcödé 猫 🐱", "x"])
def test_round_trip(tokenizer: ByteTokenizer, text: str) -> None:
    long_enough = ByteTokenizer(context_length=64)
    assert long_enough.decode(long_enough.encode(text)) == text


def test_empty_text_is_just_bos_eos(tokenizer: ByteTokenizer) -> None:
    assert tokenizer.encode("") == [BOS, EOS]
    assert tokenizer.decode(tokenizer.encode("   ")) == ""


def test_whitespace_is_normalised(tokenizer: ByteTokenizer) -> None:
    assert tokenizer.encode("  a \t photo\n") == tokenizer.encode("a photo")


def test_long_text_is_truncated_to_context(tokenizer: ByteTokenizer) -> None:
    tokens = tokenizer.encode("a" * 1000)
    assert len(tokens) == 16 and tokens[0] == BOS and tokens[-1] == EOS


def test_truncation_never_yields_half_a_character(tokenizer: ByteTokenizer) -> None:
    text = "猫" * 10  # 3 bytes each: 14 body bytes cut the fifth character
    assert tokenizer.decode(tokenizer.encode(text)) == "猫" * 4


def test_batch_is_padded(tokenizer: ByteTokenizer) -> None:
    batch = tokenizer(["ab", "abcdef"])
    assert batch.shape == (2, 16)
    assert batch[0, 4:].eq(PAD).all() and batch[1, :8].ne(PAD).all()


def test_control_characters_encode(tokenizer: ByteTokenizer) -> None:
    assert tokenizer.decode(tokenizer.encode("a\x00b\x07")) == "a\x00b\x07"
