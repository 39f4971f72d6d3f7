"""What every tokenizer family lays out and writes the same way: the floor below tokenization_bert.py.

Takes token ids (of a text and its pair) or a tokenizer's files and hands on encode_plus's three lists, or the
files written atomically into a folder. BERT's, ALBERT's, RoBERTa's and XLNet's tokenizers call these, and so
does compat_2x.py, which builds transformers 2.x's encode_plus options on `lay_out_inputs` and
`truncate_longest_first` (transformers 2.x kept its shared tokenizer code in a file of this name too).

Floors, lowest first (tests/test_layout.py::test_the_2x_adapter_sits_above_what_it_adapts):
    tokenization_utils.py -> compat_2x.py -> tokenization_bert.py -> the other families' tokenizers
This file imports no tokenizer and not compat_2x.py, so the 2.x adapter can import it at the top.
"""
import os

from .atomic_files import write_atomically, write_json_atomically


def save_tokenizer_files(save_directory, contents):
    """Writes {file name: content} into save_directory (made if missing); returns the files' paths, in order.
    Every tokenizer family's save_pretrained writes its folder with this.

    content: text (written as UTF-8), bytes (written as they are: a copy of spiece.model) or a dict (written as
    indented JSON, as transformers writes tokenizer_config.json). Each file is written atomically: a save
    that fails halfway over a folder saved before leaves each file whole, the old version or the new one.
    """
    os.makedirs(save_directory, exist_ok=True)
    paths = []
    for name, content in contents.items():
        path = os.path.join(save_directory, name)
        if isinstance(content, dict):
            write_json_atomically(path, content, ensure_ascii=False)
        else:
            data = content.encode("utf-8") if isinstance(content, str) else content
            write_atomically(path, lambda temp: _write_bytes(temp, data))
        paths.append(path)
    return tuple(paths)


def _write_bytes(path, data):
    with open(path, "wb") as writer:
        writer.write(data)


def lay_out_inputs(ids_a, ids_b, max_length, cls_id, sep_id, separators_between=1, type_b=1,
                   odd_token_to_longer=False):
    """Token ids of a text (and its pair) -> {"input_ids", "token_type_ids", "attention_mask"}, cut to max_length.

    BERT and ALBERT:  [CLS] a [SEP] b [SEP]        "[CLS] 股 票 [SEP] 突 破 [SEP]" -> types 0 0 0 0 1 1 1
    RoBERTa:          <s> a </s> </s> b </s>       (separators_between=2, type_b=0: one segment type only)
    Segment a owns the first token and its own separator. With max_length, tokens are cut from the end of
    the texts (`truncate_longest_first`, which explains `odd_token_to_longer`) so that the result, special
    tokens included, fits.
    """
    num_special = 2 if ids_b is None else 2 + separators_between
    if max_length is not None:
        if max_length < num_special:
            raise ValueError(f"max_length={max_length} leaves no room: the special tokens alone take "
                             f"{num_special} positions")
        ids_a, ids_b = truncate_longest_first(ids_a, ids_b, max_length - num_special, odd_token_to_longer)
    input_ids = [cls_id] + ids_a + [sep_id]
    token_type_ids = [0] * len(input_ids)
    if ids_b is not None:
        second = [sep_id] * (separators_between - 1) + ids_b + [sep_id]
        input_ids += second
        token_type_ids += [type_b] * len(second)
    # 1 for every real token. Padding, added later by the caller, gets 0 so attention ignores it.
    return {"input_ids": input_ids, "token_type_ids": token_type_ids, "attention_mask": [1] * len(input_ids)}


def truncate_longest_first(ids_a, ids_b, room, odd_token_to_longer=False):
    """Cuts tokens from the end of the longer sequence first, until both fit in `room`.

    Why the longer one: in a pair such as (short question, long passage) the few question tokens are
    the most valuable ones, and one token less costs the long text proportionally little. Cutting both
    evenly would throw away question words while the passage still had plenty.
    Example, room 5: a = 5 tokens, b = 3 tokens -> cut a, a, b -> a keeps 3, b keeps 2.

    When both end up cut and `room` is odd, one of them keeps the odd token. Hugging Face's two tokenizers
    disagree on which: the Python one (transformers 2.x's, and the BERT tokenizer our tests compare with)
    cuts one token at a time, the second sequence on a tie, so the first keeps it; the Rust one (the only
    ALBERT and RoBERTa tokenizer transformers 5 has) gives it to the longer, the second on a tie
    (`odd_token_to_longer=True`). Room 21, a = 30, b = 30: a keeps 11, b 10; with the flag, a 10, b 11.
    """
    if ids_b is None:
        return ids_a[:room], None
    if 2 * min(len(ids_a), len(ids_b)) <= room:
        # Only the longer is cut (if anything): it keeps what the shorter leaves of the room.
        if len(ids_a) > len(ids_b):
            keep_a, keep_b = room - len(ids_b), len(ids_b)
        else:
            keep_a, keep_b = len(ids_a), room - len(ids_a)
    else:
        # Both are cut, to half the room each; the odd token goes to the first, or with the flag to the longer.
        half, odd = room // 2, room % 2
        a_gets_odd = len(ids_a) > len(ids_b) if odd_token_to_longer else True
        keep_a, keep_b = (half + odd, half) if a_gets_odd else (half, half + odd)
    return ids_a[:keep_a], ids_b[:keep_b]
