"""Reading path, stop 2 (README): read a task's files into `InputExample`s.

In:  a task name ("mrpc", "tnews", "generic", ...), a data folder, a split ("train", "dev", "test").
Out: a list of `InputExample(guid, text_a, text_b, label)`, and the task's label list.

Every task is one row of data in `TASKS`: which file holds each split, how its fields are separated,
whether it starts with a header line, which column holds text_a / text_b / the label, the label list,
and the metric that scores it. One reader (`read_examples`) walks any of those layouts, so adding a task
means adding a row, not writing a class.

A worked example. MRPC's train.tsv starts like this (tab-separated, one header line):

    Quality  #1 ID    #2 ID    #1 String                        #2 String
    1        702876   702977   Amrozi accused his brother ...   Referring to him as only " the witness " ...

and its row in the table says text_a is column 3, text_b column 4, label column 0, so line 2 becomes
    InputExample(guid="train-2", text_a="Amrozi accused his brother ...", text_b="Referring to ...", label="1")
The guid carries the split and the 1-based line number, so any later complaint points back into the file.

Bad data fails loudly, naming the file and the line: too few columns, a label outside the label list,
a file with no examples, a missing file (with the list of files the task expects), one label typed two
ways (`positive`, `Positive `) or only one label in a training file the labels are read from, a CSV quote
that never closes or that swallows lines which read as records. Text is passed on
untouched, control characters included: cleaning text is the tokenizer's job.

Run it on its own to see what a task reads:
    python -m bert_read_step_to_step.tasks generic data/tweets --split dev
"""
import argparse
import csv
import dataclasses
import difflib
import math
import os
from dataclasses import dataclass, field
from typing import Optional, Union

from transformers.file_utils import BadValueError, run_entry_point

SPLITS = ("train", "dev", "test")

# `TaskSpec.labels` holds either the fixed label list of a task or this marker, which says:
# "the labels are the distinct values of the label column of the training file, sorted".
LABELS_FROM_TRAIN_FILE = "from training file"


class DataError(BadValueError):
    """A data file cannot be read as the task describes it. The message names the file and line."""


@dataclass
class InputExample:
    """One example as it stands in the file: raw text, label as a string (None where the file has none)."""
    guid: str
    text_a: str
    text_b: Optional[str] = None
    label: Optional[str] = None


# A column is a 0-based index (negative counts from the end, as in Python) or, in files with a header
# line, a column name that is looked up in that header.
Column = Union[int, str]


@dataclass(frozen=True)
class Layout:
    """Where the fields of one kind of file sit. GLUE test files differ from train/dev files (other
    columns, no label), so a task has one Layout for train/dev and one for test."""
    has_header: bool
    text_a: Column
    text_b: Optional[Column] = None
    label: Optional[Column] = None   # None: this file carries no labels (e.g. GLUE test files)
    guid: Optional[Column] = None    # None: the guid is "<split>-<line number>"
    fields: Optional[int] = None     # fields per line in a file without a header (with one: the header's count)
    # True: the label column may be absent; labels are read when the header line has that column. Your own
    # test file may be labeled (then --do_predict also scores it) or not (then it only predicts).
    label_optional: bool = False


@dataclass(frozen=True)
class TaskSpec:
    """One row of the task table."""
    name: str
    files: dict                      # split -> file name inside data_dir
    delimiter: str                   # "\t", "_!_" or ","
    layout: Layout                   # train.* and dev.*
    test_layout: Layout              # test.*
    labels: Union[tuple, str]        # the label list, LABELS_FROM_TRAIN_FILE, or () for regression
    output_mode: str                 # "classification" or "regression"
    metric: str                      # a metric name from metrics.py: acc, acc_and_f1, mcc, pearson_and_spearman
    csv_quoting: bool = False        # True: fields may be "quoted, with delimiters" (CSV); False: split plainly
    label_aliases: dict = field(default_factory=dict)   # spelling in the file -> label in `labels`
    # Labels read from the training file that differ only by case or surrounding whitespace ('positive',
    # 'Positive ') are an error, since they are most often one class typed two ways. True: distinct classes.
    distinct_label_spellings: bool = False

    def layout_for(self, split):
        return self.test_layout if split == "test" else self.layout


def _glue_files(dev="dev.tsv", test="test.tsv"):
    return {"train": "train.tsv", "dev": dev, "test": test}


_BINARY = ("0", "1")
_NLI_3 = ("contradiction", "entailment", "neutral")
_NLI_2 = ("entailment", "not_entailment")

# --------------------------------------------------------------------------------------------------
# The task table.
#
# GLUE: the layouts of the files in the public GLUE release (gluebenchmark.com). Every file is
# tab-separated with no quoting (a stray " in a sentence is just a character). Test files have no labels.
#   CoLA   train/dev: NO header; columns source, label, notes (a "*" for unacceptable), sentence.
#          test: header "index  sentence".
#   SST-2  train/dev: header "sentence  label"; test: header "index  sentence".
#   MRPC   train/dev: header "Quality  #1 ID  #2 ID  #1 String  #2 String" (Quality is the label);
#          test: the same with "index" instead of "Quality".
#   STS-B  header "index genre filename year old_index source1 source2 sentence1 sentence2 score";
#          the score (0 to 5) is a regression target; test has no score column.
#   QQP    header "id qid1 qid2 question1 question2 is_duplicate"; test: "id question1 question2".
#   MNLI   header "index promptID pairID genre sentence1_binary_parse ... sentence1 sentence2 label1 ...
#          gold_label": the sentences are columns 8 and 9, the gold label is the LAST column (train has
#          one annotator label before it, dev five, so only "-1" finds it in both).
#          Dev and test come in a matched and a mismatched (other genres) version; mnli-mm reads the latter.
#   QNLI   header "index question sentence label";   RTE, WNLI: header "index sentence1 sentence2 label".
#
# ChineseGLUE (github.com/ChineseGLUE/ChineseGLUE, README "数据集介绍与下载", files of
# chineseGLUEdatasets.v0.0.1.zip, and the processors in baselines/models/bert/run_classifier.py):
#   TNEWS  toutiao_category_{train,dev,test}.txt, fields separated by "_!_", no header:
#            6552277613866385923_!_104_!_news_finance_!_股票中的突破形态_!_股票
#          = news id, label code, label name, title, keywords. text_a is the title. 15 label codes,
#          100..116 without 105 and 111. The test file carries labels too.
#          (The baseline skips line 1 of every file, which drops a real example here; we do not.)
#   LCQMC  {train,dev,test}.txt, tab-separated "text_a  text_b  label", labels 0/1 (1 = same meaning).
#          The README's example lines show no header line, and the original LCQMC release has none.
#   XNLI   {train,dev,test}.tsv, the Chinese part converted to "premise  hypo  label" with a header line
#          (as PaddleHub's copy shows); labels contradiction/entailment/neutral, where the training file
#          spells contradiction "contradictory" (the baseline maps it; `label_aliases` does it here).
#   INEWS  {train,dev,test}.txt, "_!_"-separated, header "label_!_id_!_title_!_content":
#            1_!_bbf2e8a4824149bea36e703bbe8b0795_!_问大家一下，g20峰会之后..._!_问大家一下，g20峰会之后...
#          text_a = title, text_b = content, labels 0/1/2 (sentiment). The baseline ignores test labels.
#
# If a file does not match its row (say it has a header line the row does not expect), reading it fails
# on line 1 with a message that says so; no example is dropped silently.
# --------------------------------------------------------------------------------------------------
TASKS = {
    "cola": TaskSpec(
        name="cola", files=_glue_files(), delimiter="\t",
        layout=Layout(has_header=False, text_a=3, label=1, fields=4),
        test_layout=Layout(has_header=True, text_a=1, guid=0),
        labels=_BINARY, output_mode="classification", metric="mcc"),
    "sst-2": TaskSpec(
        name="sst-2", files=_glue_files(), delimiter="\t",
        layout=Layout(has_header=True, text_a=0, label=1),
        test_layout=Layout(has_header=True, text_a=1, guid=0),
        labels=_BINARY, output_mode="classification", metric="acc"),
    "mrpc": TaskSpec(
        name="mrpc", files=_glue_files(), delimiter="\t",
        layout=Layout(has_header=True, text_a=3, text_b=4, label=0),
        test_layout=Layout(has_header=True, text_a=3, text_b=4, guid=0),
        labels=_BINARY, output_mode="classification", metric="acc_and_f1"),
    "sts-b": TaskSpec(
        name="sts-b", files=_glue_files(), delimiter="\t",
        layout=Layout(has_header=True, text_a=7, text_b=8, label=-1, guid=0),
        test_layout=Layout(has_header=True, text_a=7, text_b=8, guid=0),
        labels=(), output_mode="regression", metric="pearson_and_spearman"),
    "qqp": TaskSpec(
        name="qqp", files=_glue_files(), delimiter="\t",
        layout=Layout(has_header=True, text_a=3, text_b=4, label=5, guid=0),
        test_layout=Layout(has_header=True, text_a=1, text_b=2, guid=0),
        labels=_BINARY, output_mode="classification", metric="acc_and_f1"),
    "mnli": TaskSpec(
        name="mnli", files=_glue_files(dev="dev_matched.tsv", test="test_matched.tsv"), delimiter="\t",
        layout=Layout(has_header=True, text_a=8, text_b=9, label=-1, guid=0),
        test_layout=Layout(has_header=True, text_a=8, text_b=9, guid=0),
        labels=_NLI_3, output_mode="classification", metric="acc"),
    "mnli-mm": TaskSpec(
        name="mnli-mm", files=_glue_files(dev="dev_mismatched.tsv", test="test_mismatched.tsv"),
        delimiter="\t",
        layout=Layout(has_header=True, text_a=8, text_b=9, label=-1, guid=0),
        test_layout=Layout(has_header=True, text_a=8, text_b=9, guid=0),
        labels=_NLI_3, output_mode="classification", metric="acc"),
    "qnli": TaskSpec(
        name="qnli", files=_glue_files(), delimiter="\t",
        layout=Layout(has_header=True, text_a=1, text_b=2, label=-1, guid=0),
        test_layout=Layout(has_header=True, text_a=1, text_b=2, guid=0),
        labels=_NLI_2, output_mode="classification", metric="acc"),
    "rte": TaskSpec(
        name="rte", files=_glue_files(), delimiter="\t",
        layout=Layout(has_header=True, text_a=1, text_b=2, label=-1, guid=0),
        test_layout=Layout(has_header=True, text_a=1, text_b=2, guid=0),
        labels=_NLI_2, output_mode="classification", metric="acc"),
    "wnli": TaskSpec(
        name="wnli", files=_glue_files(), delimiter="\t",
        layout=Layout(has_header=True, text_a=1, text_b=2, label=-1, guid=0),
        test_layout=Layout(has_header=True, text_a=1, text_b=2, guid=0),
        labels=_BINARY, output_mode="classification", metric="acc"),
    "tnews": TaskSpec(
        name="tnews", delimiter="_!_",
        files={split: f"toutiao_category_{split}.txt" for split in SPLITS},
        layout=Layout(has_header=False, text_a=3, label=1, guid=0, fields=5),
        test_layout=Layout(has_header=False, text_a=3, label=1, guid=0, fields=5),
        labels=tuple(str(code) for code in range(100, 117) if code not in (105, 111)),
        output_mode="classification", metric="acc"),
    "lcqmc": TaskSpec(
        name="lcqmc", delimiter="\t",
        files={split: f"{split}.txt" for split in SPLITS},
        layout=Layout(has_header=False, text_a=0, text_b=1, label=2, fields=3),
        test_layout=Layout(has_header=False, text_a=0, text_b=1, label=2, fields=3),
        labels=_BINARY, output_mode="classification", metric="acc"),
    "xnli": TaskSpec(
        name="xnli", delimiter="\t",
        files={split: f"{split}.tsv" for split in SPLITS},
        layout=Layout(has_header=True, text_a=0, text_b=1, label=2),
        test_layout=Layout(has_header=True, text_a=0, text_b=1, label=2),
        labels=_NLI_3, output_mode="classification", metric="acc",
        label_aliases={"contradictory": "contradiction"}),
    "inews": TaskSpec(
        name="inews", delimiter="_!_",
        files={split: f"{split}.txt" for split in SPLITS},
        layout=Layout(has_header=True, text_a=2, text_b=3, label=0, guid=1),
        test_layout=Layout(has_header=True, text_a=2, text_b=3, guid=1),
        labels=("0", "1", "2"), output_mode="classification", metric="acc"),
}


# --------------------------------------------------------------------------------------------------
# The generic task: your own TSV or CSV file. Its row is built from options, because only you know
# your columns. Defaults match what `prepare_demo_data` writes: train.tsv / dev.tsv with the header
# "label<TAB>text". Columns are header names, or 0-based indexes (the only choice without a header).
# --------------------------------------------------------------------------------------------------
def make_generic_task(label_column="label", text_a_column="text", text_b_column=None,
                      file_format="tsv", has_header=True, distinct_label_spellings=False):
    """The TaskSpec of a user's own data: {train,dev,test}.tsv (or .csv), labels read from train."""
    if file_format not in ("tsv", "csv"):
        raise ValueError(f"file_format must be 'tsv' or 'csv', not {file_format!r}")
    if label_column is None or text_a_column is None:
        raise ValueError("the generic task needs a label column and a text_a column")
    for column in (label_column, text_a_column, text_b_column):
        if isinstance(column, str) and not has_header:
            raise ValueError(f"column {column!r} is a name, but has_header=False: "
                             f"without a header line, give columns as 0-based indexes")
    layout = Layout(has_header=has_header, text_a=text_a_column, text_b=text_b_column, label=label_column)
    # The test file is for predictions; when its header has the label column too, the labels are read and
    # the predictions are scored. Without a header line we cannot tell a label column from a text column.
    test_layout = Layout(has_header=has_header, text_a=text_a_column, text_b=text_b_column,
                         label=label_column if has_header else None, label_optional=has_header)
    return TaskSpec(
        name="generic", files={split: f"{split}.{file_format}" for split in SPLITS},
        delimiter="\t" if file_format == "tsv" else ",", csv_quoting=file_format == "csv",
        layout=layout, test_layout=test_layout, labels=LABELS_FROM_TRAIN_FILE,
        output_mode="classification", metric="acc", distinct_label_spellings=distinct_label_spellings)


TASKS["generic"] = make_generic_task()


def add_generic_task_options(parser):
    """The command-line options of the generic task, shared by run_classifier.py and the re-init sweep."""
    group = parser.add_argument_group("generic task (your own TSV or CSV files)")
    group.add_argument("--label_column", default="label", help="label column (header name or 0-based index)")
    group.add_argument("--text_a_column", default="text", help="first text column")
    group.add_argument("--text_b_column", default=None, help="second text column, for sentence pairs")
    group.add_argument("--file_format", default="tsv", choices=["tsv", "csv"], help="file format")
    group.add_argument("--distinct_label_spellings", action="store_true",
                       help="labels that differ only by case or surrounding whitespace ('positive', 'Positive ') "
                            "are distinct classes (without it they are an error)")


def generic_task_options(args):
    """The keyword arguments of `get_task` from parsed options (none for tasks other than `generic`).
    A column given as digits is an index, e.g. --label_column 0 for files without a header."""
    if args.task_name.lower() != "generic":
        return {}
    as_column = lambda value: int(value) if value is not None and value.lstrip("-").isdigit() else value
    options = {"label_column": as_column(args.label_column), "text_a_column": as_column(args.text_a_column),
               "text_b_column": as_column(args.text_b_column), "file_format": args.file_format}
    if getattr(args, "distinct_label_spellings", False):
        # Only when given: a checkpoint's record of these options, written before the flag existed, then
        # still equals that of a run without it (run_classifier compares them on --resume_from_checkpoint).
        options["distinct_label_spellings"] = True
    return options


def get_task(name, **generic_options):
    """The TaskSpec for `name` (case-insensitive). Options are only for the generic task."""
    if isinstance(name, TaskSpec):
        if generic_options:
            raise TypeError("options are given together with a ready TaskSpec; build it with "
                            "make_generic_task(...) instead")
        return name
    key = name.lower()
    if key not in TASKS:
        # A near spelling of a task's name (mrcp: mrpc) is a typo; any other name (tweets) is most likely the
        # user's own data, which the generic task reads, so that is what we point to.
        close = difflib.get_close_matches(key, TASKS, n=3, cutoff=0.7) or ["generic"]
        raise BadValueError(
            f"unknown task {name!r}; did you mean {' or '.join(repr(c) for c in close)}? known tasks: "
            f"{', '.join(TASKS)}. A task is named for the benchmark data set whose files it reads; 'generic' "
            "reads your own TSV or CSV file with a label column and one or two text columns (the demo's tweets "
            "use it; --label_column, --text_a_column and --text_b_column name the columns)")
    if key == "generic":
        return make_generic_task(**generic_options)
    if generic_options:
        raise TypeError(f"task {key!r} takes no options, got {sorted(generic_options)}; "
                        f"options such as label_column are for the 'generic' task")
    return TASKS[key]


# --------------------------------------------------------------------------------------------------
# Reading a file: lines -> rows of fields -> examples
# --------------------------------------------------------------------------------------------------
def find_data_file(spec, data_dir, split):
    """The file of `split`, or a DataError that says which files this task expects."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    data_dir = os.fspath(data_dir)
    path = os.path.join(data_dir, spec.files[split])
    if os.path.isfile(path):
        return path
    expected = ", ".join(spec.files[s] for s in SPLITS)
    if not os.path.isdir(data_dir):
        raise DataError(f"{path}: no such file; the data folder {data_dir!r} does not exist "
                        f"(task {spec.name!r} expects {expected} in it)")
    present = sorted(os.listdir(data_dir))
    shown = ", ".join(present[:10]) + (", ..." if len(present) > 10 else "") if present else "nothing"
    raise DataError(f"{path}: no such file; task {spec.name!r} expects {expected} in {data_dir!r}, "
                    f"which holds: {shown}")


def _numbered_lines(path):
    """(1-based line number, text) for each line, decoded as UTF-8, line ending kept.

    The file is read as bytes and split on b"\\n" only, so characters that Python's text mode would also
    treat as line breaks (\\r alone, \\x1c, \\u2028, ...) stay inside the text, where the tokenizer
    deals with them."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(f"{path}:{number}: not valid UTF-8 ({err.reason} at byte {err.start})")
            if number == 1:
                text = text.lstrip("\ufeff")  # a byte-order mark that some editors put first
            yield number, text


def _numbered_rows(path, spec):
    """(line number, [fields]) for each non-blank line (for CSV: each record, at the line it starts on)."""
    if spec.csv_quoting:
        yield from _numbered_csv_records(path, spec.delimiter)
        return
    for number, text in _numbered_lines(path):
        text = text.rstrip("\r\n")
        if text:
            yield number, text.split(spec.delimiter)


def _numbered_csv_records(path, delimiter):
    """(line number where it starts, [fields]) for each CSV record; a quote that never closes is an error.

    A quoted field may span lines, so the csv module consumes the lines. It asks for one line at a time and
    hands back a record as soon as it is complete, so the lines it took since the last record are this
    record's. A quote that never closes makes the csv module read the rest of the file into one field, rows
    and whole classes with it, without an error: we look for that ourselves and name the line it opens on.
    """
    taken = []

    def lines():
        for number, text in _numbered_lines(path):
            taken.append((number, text))
            yield text

    reader = csv.reader(lines(), delimiter=delimiter)
    try:
        for fields in reader:
            record, taken[:] = list(taken), []
            if len(record) > 1:
                opened = _unclosed_quote_line(record, delimiter)
                if opened is not None:
                    raise DataError(f"{path}:{opened}: a quote opens here and never closes, so lines {opened}-"
                                    f"{record[-1][0]} (the rest of the file) would be read as one field; close "
                                    "the quote, and write a quote inside a quoted field twice (\"\")")
            if fields:
                yield record[0][0], fields
    except csv.Error as err:
        raise DataError(f"{path}:{reader.line_num}: not valid CSV ({err})")


def _unclosed_quote_line(numbered_lines, delimiter):
    """The number of the line on which a quote opens and is still open at the end, or None; by the csv
    module's rules: a quote opens a field only at the field's start, and "" inside a quoted field is a quote."""
    quoted_since, field_start = None, True
    for number, text in numbered_lines:
        position = 0
        while position < len(text):
            char = text[position]
            if quoted_since is not None:
                if char == '"' and text[position + 1:position + 2] == '"':
                    position += 2
                    continue
                if char == '"':
                    quoted_since = None
            elif char == '"' and field_start:
                quoted_since, field_start = number, False
            else:
                field_start = char in (delimiter, "\r", "\n")
            position += 1
    return quoted_since


def _check_quoted_lines_are_not_records(spec, path, multiline_records, expected, label_column, labels_seen):
    """A quoted field whose lines read as records of this very file (the file's field count, a label the file
    uses) is almost surely a quote closed too late, which swallowed those records: an error naming the line.
    A multi-line field of plain text (an address, a poem) does not look like that and stays allowed."""
    if label_column is None:
        return  # without labels, any line with the right number of commas would look like a record
    for number, fields in multiline_records:
        line = number
        for value in fields:
            for offset, piece in enumerate(value.split("\n")):
                if offset > 0:
                    line += 1
                    inner = next(csv.reader([piece.rstrip("\r")], delimiter=spec.delimiter), [])
                    if len(inner) == expected and inner[label_column] in labels_seen:
                        raise DataError(
                            f"{path}:{line}: this line reads as a record of the file ({_preview(inner)}), but it "
                            f"sits inside a quoted field that opens on line {number}; is a quote on line {number} "
                            "missing its closing quote?")


def _resolve_column(column, header, header_line, path):
    """A column name -> its index in the header line; an index stays as it is."""
    if column is None or isinstance(column, int):
        return column
    if header is None:
        raise DataError(f"{path}: column {column!r} is given by name, but this file has no header line")
    if column not in header:
        close = difflib.get_close_matches(column, header, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DataError(f"{path}:{header_line}: no column named {column!r} in the header {header}{hint}")
    return header.index(column)


def _header_has(header, column):
    return column in header if isinstance(column, str) else -len(header) <= column < len(header)


def _columns_needed(columns):
    """How many fields a line must have so that every column index points at its own field.

    Non-negative indexes count from the left, negative ones from the right, and the two must not meet:
    MNLI wants sentences at 8 and 9 and the label at -1, so a line needs at least 11 fields."""
    from_left = max([c + 1 for c in columns if c is not None and c >= 0], default=0)
    from_right = max([-c for c in columns if c is not None and c < 0], default=0)
    return from_left + from_right


def _read_file(spec, path, split, labels):
    """Read one file into examples; `labels` is the list to check labels against (None: do not check;
    LABELS_FROM_TRAIN_FILE: the training file's labels, read only if this file turns out to have labels)."""
    layout = spec.layout_for(split)
    rows = _numbered_rows(path, spec)
    header, header_line = None, None
    if layout.has_header:
        first = next(rows, None)
        if first is None:
            raise DataError(f"{path}: the file is empty; task {spec.name!r} expects a header line "
                            f"and then one example per line")
        header_line, header = first
        if layout.label_optional and not _header_has(header, layout.label):
            layout = dataclasses.replace(layout, label=None)
    if layout.label is None:
        labels = None
    elif labels == LABELS_FROM_TRAIN_FILE:
        labels = get_labels(spec, os.path.dirname(path))
    if header is not None:
        _check_header_is_not_data(spec, layout, path, header_line, header, labels)

    names = ("text_a", "text_b", "label", "guid")
    columns = [_resolve_column(getattr(layout, name), header, header_line, path) for name in names]
    needed = _columns_needed(columns)
    # Every line has exactly as many fields as the header (or as the task's row says, or as the first line
    # of a generic file without a header). One more is not harmless: a tab inside a tweet would cut the
    # tweet short, and with the label column last the tweet's tail would become an invented class.
    expected = len(header) if header is not None else layout.fields

    examples, first_line_of_label, multiline_records = [], {}, []
    for number, fields in rows:
        if len(fields) < needed:
            raise DataError(f"{path}:{number}: expected at least {needed} fields separated by "
                            f"{spec.delimiter!r}, found {len(fields)}: {_preview(fields)}")
        expected = len(fields) if expected is None else expected
        if len(fields) != expected:
            raise DataError(_field_count_message(spec, path, number, fields, expected, header_line))
        text_a, text_b, label, guid = (None if column is None else fields[column] for column in columns)
        if label is not None:
            label = spec.label_aliases.get(label, label)
            _check_label(spec, path, number, label, labels, layout)
            first_line_of_label.setdefault(label, number)
        if spec.csv_quoting and any("\n" in value for value in fields):
            multiline_records.append((number, fields))
        examples.append(InputExample(guid=f"{split}-{number if guid is None else guid}",
                                     text_a=text_a, text_b=text_b, label=label))

    if not examples:
        what = "only a header line" if layout.has_header else "no lines"
        raise DataError(f"{path}: no examples in the file (it has {what})")
    if multiline_records:
        _check_quoted_lines_are_not_records(spec, path, multiline_records, expected, columns[2],
                                            set(first_line_of_label) | set(labels or ()))
    if split == "train" and spec.labels == LABELS_FROM_TRAIN_FILE and first_line_of_label:
        _check_training_labels(spec, path, first_line_of_label)
    return examples


def _check_training_labels(spec, path, first_line_of_label):
    """Two spellings of one label, or a single label, in a training file that the label list is read from.

    `first_line_of_label`: {label: the line it first appears on}. 'positive', 'Positive' and 'positive '
    would otherwise become three classes. A single label would give a one-row head, which the model
    trains as a regression (num_labels == 1) and which scores accuracy 1.0 on its own data.
    """
    name = os.path.basename(path)
    if len(first_line_of_label) == 1:
        [label] = first_line_of_label
        raise DataError(f"{path}: only one label in {name}: {label!r}; a classifier needs examples of at least "
                        "two classes")
    if spec.distinct_label_spellings:
        return
    by_key = {}
    for label, line in sorted(first_line_of_label.items(), key=lambda item: item[1]):
        key = label.strip().casefold()
        if key in by_key:
            first, first_line = by_key[key]
            raise DataError(f"{path}:{line}: label {label!r} differs from {first!r} ({name}:{first_line}) only by "
                            "case or surrounding whitespace; write one spelling, or pass --distinct_label_spellings "
                            "if they are different classes")
        by_key[key] = (label, line)


def small_training_set_warning(path, num_examples, batch_size):
    """The WARNING text for a training set smaller than one batch, or None.

    Such a run takes every step on the same few examples; the accuracy it reports says little.
    """
    if num_examples >= batch_size:
        return None
    return (f"{path}: only {num_examples} training example(s), fewer than one batch of {batch_size}: every "
            "step sees the same examples, and the scores of this run say little")


def _field_count_message(spec, path, number, fields, expected, header_line):
    """Too many or too few fields on a line, with what most likely caused it and how to fix it."""
    source = f"as the header on line {header_line} has" if header_line else f"as task {spec.name!r} has"
    message = (f"{path}:{number}: expected {expected} fields separated by {spec.delimiter!r} ({source}), "
               f"found {len(fields)}: {_preview(fields)}")
    if len(fields) < expected:
        return message
    if spec.csv_quoting:
        return (message + f"; a field that contains {spec.delimiter!r} must be in double quotes, "
                          f"e.g. \"good{spec.delimiter} really\" (a quote inside it is written twice: \"\")")
    if spec.name == "generic":
        return (message + "; a .tsv file cannot quote a tab inside a text: replace it with a space, or write "
                          "a .csv file (--file_format csv) with that field in double quotes")
    return message + f"; does a text contain {spec.delimiter!r}? This task's files cannot quote it: replace it"


def _check_label(spec, path, number, label, labels, layout):
    if not label.strip():
        raise DataError(f"{path}:{number}: the label field is empty")
    if spec.output_mode == "regression":
        try:
            value = float(label)
        except ValueError:
            raise DataError(f"{path}:{number}: the label {label!r} is not a number "
                            f"(task {spec.name!r} is a regression task)") from None
        if not math.isfinite(value):
            # float() accepts "nan" and "inf"; one such score would turn the loss, then every weight, into NaN.
            raise DataError(f"{path}:{number}: the label {label!r} is not a finite number "
                            f"(task {spec.name!r} is a regression task)")
        return
    if labels is not None and label not in labels:
        hint = ""
        same_but_spelling = [known for known in labels if known.strip().casefold() == label.strip().casefold()]
        if same_but_spelling:
            hint = f"; it differs from the label {same_but_spelling[0]!r} only by case or surrounding whitespace"
        elif number == 1 and not layout.has_header:
            hint = (f"; task {spec.name!r} expects no header line in this file, "
                    f"is line 1 a header?")
        raise DataError(f"{path}:{number}: unknown label {label!r}; task {spec.name!r} has labels "
                        f"{list(labels)}{hint}")


def _check_header_is_not_data(spec, layout, path, number, header, labels):
    """A file that should start with a header but starts with an example would lose that example
    silently. Where we know the labels, a header whose label field is a valid label gives it away."""
    if labels is None or layout.label is None or not isinstance(layout.label, int):
        return
    if len(header) >= _columns_needed([layout.text_a, layout.text_b, layout.label]):
        value = spec.label_aliases.get(header[layout.label], header[layout.label])
        if value in labels:
            raise DataError(f"{path}:{number}: task {spec.name!r} expects a header line here, but the "
                            f"line looks like an example (its label field is {value!r}); "
                            f"is the header missing?")


def _preview(fields, width=80):
    text = repr(fields)
    return text if len(text) <= width else text[:width] + "...]"


# --------------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------------
def get_labels(task, data_dir=None, **generic_options):
    """The label list, in the order that defines label ids (label_list[i] has id i).

    Fixed for the table's tasks; for the generic task, the distinct labels of the training file,
    sorted, so the same file always gives the same ids. Regression tasks have no labels: [].
    """
    spec = get_task(task, **generic_options)
    if spec.labels != LABELS_FROM_TRAIN_FILE:
        return list(spec.labels)
    if data_dir is None:
        raise ValueError(f"task {spec.name!r} takes its labels from the training file: pass data_dir")
    path = find_data_file(spec, data_dir, "train")
    if spec.layout.label is None:
        raise ValueError(f"task {spec.name!r} has no label column")
    examples = _read_file(spec, path, "train", labels=None)
    return sorted({example.label for example in examples})


def get_num_labels(task, data_dir=None, **generic_options):
    """The size of the classifier's output: 1 for regression (a single score), else the label count."""
    spec = get_task(task, **generic_options)
    if spec.output_mode == "regression":
        return 1
    labels = get_labels(spec, data_dir)
    if len(labels) < 2:  # one row would make the model train a regression head (MSE) on class ids
        raise DataError(f"task {spec.name!r} has {len(labels)} label(s) {labels}; a classifier needs at least two")
    return len(labels)


def read_examples(task, data_dir, split, **generic_options):
    """The examples of one split of a task: list[InputExample].

    Labels are checked against the task's label list (for the generic task: against the labels of the
    training file) and reported with file and line when they do not belong.
    """
    spec = get_task(task, **generic_options)
    path = find_data_file(spec, data_dir, split)
    if spec.output_mode == "regression" or spec.layout_for(split).label is None:
        labels = None
    elif spec.labels == LABELS_FROM_TRAIN_FILE:
        labels = None if split == "train" else LABELS_FROM_TRAIN_FILE
    else:
        labels = spec.labels
    return _read_file(spec, path, split, labels)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Print the first examples a task reads from its files.")
    parser.add_argument("task")
    parser.add_argument("data_dir")
    parser.add_argument("--split", default="train", choices=SPLITS)
    parser.add_argument("-n", type=int, default=5, help="how many examples to print")
    args = parser.parse_args(argv)
    spec = get_task(args.task)
    examples = read_examples(spec, args.data_dir, args.split)
    print(f"{spec.name} {args.split}: {len(examples)} examples from {spec.files[args.split]}; "
          f"labels {get_labels(spec, args.data_dir)}; metric {spec.metric}")
    for example in examples[:args.n]:
        print(example)


if __name__ == "__main__":
    run_entry_point(main, "python -m bert_read_step_to_step.tasks")
