"""Each task's row in the table reads sample lines written in that task's public file layout;
prepare_demo_data writes a folder that the generic task reads."""
from collections import Counter

import pytest

from bert_read_step_to_step import prepare_demo_data
from bert_read_step_to_step.tasks import (
    TASKS, DataError, InputExample, get_labels, get_num_labels, get_task, make_generic_task,
    read_examples,
)

T = "\t"


def write(folder, name, lines, newline="\n"):
    path = folder / name
    path.write_bytes(newline.join(lines).encode("utf-8") + newline.encode())
    return path


def triples(examples):
    return [(e.text_a, e.text_b, e.label) for e in examples]


# --------------------------------------------------------------------------------------------------
# GLUE: one case per task and split: (task, file name, lines, split, expected (text_a, text_b, label))
# --------------------------------------------------------------------------------------------------
GLUE_CASES = [
    # CoLA train/dev have no header: source, label, notes ("*" marks the unacceptable), sentence.
    ("cola", "train.tsv",
     ["gj04" + T + "1" + T + "" + T + "The sailors rode the breeze clear of the rocks.",
      "gj04" + T + "0" + T + "*" + T + "The more does Bill smoke, the more Susan hates him."],
     "train",
     [("The sailors rode the breeze clear of the rocks.", None, "1"),
      ("The more does Bill smoke, the more Susan hates him.", None, "0")]),
    ("cola", "test.tsv",
     ["index" + T + "sentence", "0" + T + "Bill whistled past the house."],
     "test", [("Bill whistled past the house.", None, None)]),
    ("sst-2", "dev.tsv",
     ["sentence" + T + "label", "it 's a charming and often affecting journey . " + T + "1"],
     "dev", [("it 's a charming and often affecting journey . ", None, "1")]),
    ("sst-2", "test.tsv",
     ["index" + T + "sentence", "0" + T + "uneasy mishmash of styles and genres ."],
     "test", [("uneasy mishmash of styles and genres .", None, None)]),
    ("mrpc", "train.tsv",
     ["Quality" + T + "#1 ID" + T + "#2 ID" + T + "#1 String" + T + "#2 String",
      "1" + T + "702876" + T + "702977" + T + "He said the plan was sound." + T + "The plan was sound, he said."],
     "train", [("He said the plan was sound.", "The plan was sound, he said.", "1")]),
    ("mrpc", "test.tsv",
     ["index" + T + "#1 ID" + T + "#2 ID" + T + "#1 String" + T + "#2 String",
      "0" + T + "1089874" + T + "1089925" + T + "Shares fell 3 percent." + T + "The stock lost 3 percent."],
     "test", [("Shares fell 3 percent.", "The stock lost 3 percent.", None)]),
    ("sts-b", "dev.tsv",
     [T.join(["index", "genre", "filename", "year", "old_index", "source1", "source2",
              "sentence1", "sentence2", "score"]),
      T.join(["0", "main-captions", "MSRvid", "2012test", "0000", "none", "none",
              "A man with a hard hat is dancing.", "A man wearing a hard hat is dancing.", "5.000"])],
     "dev", [("A man with a hard hat is dancing.", "A man wearing a hard hat is dancing.", "5.000")]),
    ("sts-b", "test.tsv",
     [T.join(["index", "genre", "filename", "year", "old_index", "source1", "source2",
              "sentence1", "sentence2"]),
      T.join(["0", "main-captions", "MSRvid", "2012test", "0024", "none", "none",
              "A girl is styling her hair.", "A girl is brushing her hair."])],
     "test", [("A girl is styling her hair.", "A girl is brushing her hair.", None)]),
    ("qqp", "train.tsv",
     [T.join(["id", "qid1", "qid2", "question1", "question2", "is_duplicate"]),
      T.join(["133273", "213221", "213222", "How is the life of a math student?",
              "Which level of prepration is enough for the exam jlpt5?", "0"])],
     "train", [("How is the life of a math student?",
                "Which level of prepration is enough for the exam jlpt5?", "0")]),
    ("qqp", "test.tsv",
     [T.join(["id", "question1", "question2"]),
      T.join(["0", "Why am I mentally very lonely?", "Find the remainder when 23^24 is divided by 24?"])],
     "test", [("Why am I mentally very lonely?", "Find the remainder when 23^24 is divided by 24?", None)]),
    # MNLI train: one annotator label, then gold_label; dev: five annotator labels, then gold_label.
    ("mnli", "train.tsv",
     [T.join(["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
              "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1", "gold_label"]),
      T.join(["0", "31193", "31193n", "government", "( ( Conceptually ...", "( ( ( Product ...",
              "(ROOT (S ...", "(ROOT (S ...", "Conceptually cream skimming has two dimensions.",
              "Product and geography are what make cream skimming work.", "neutral", "neutral"])],
     "train", [("Conceptually cream skimming has two dimensions.",
                "Product and geography are what make cream skimming work.", "neutral")]),
    ("mnli", "dev_matched.tsv",
     [T.join(["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
              "sentence1_parse", "sentence2_parse", "sentence1", "sentence2",
              "label1", "label2", "label3", "label4", "label5", "gold_label"]),
      T.join(["0", "63735", "63735n", "slate", "(", "(", "(", "(", "The new rights are nice enough",
              "Everyone really likes the newest benefits", "neutral", "entailment", "neutral", "neutral",
              "neutral", "entailment"])],
     "dev", [("The new rights are nice enough", "Everyone really likes the newest benefits", "entailment")]),
    ("mnli-mm", "dev_mismatched.tsv",
     [T.join(["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
              "sentence1_parse", "sentence2_parse", "sentence1", "sentence2",
              "label1", "label2", "label3", "label4", "label5", "gold_label"]),
      T.join(["0", "75290", "75290c", "letters", "(", "(", "(", "(", "Your contribution helped.",
              "Your contributions were of no help.", "contradiction", "contradiction", "contradiction",
              "contradiction", "contradiction", "contradiction"])],
     "dev", [("Your contribution helped.", "Your contributions were of no help.", "contradiction")]),
    ("mnli", "test_matched.tsv",
     [T.join(["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
              "sentence1_parse", "sentence2_parse", "sentence1", "sentence2"]),
      T.join(["0", "31493", "31493", "travel", "(", "(", "(", "(", "Hierbas is a sweet liqueur.",
              "There is a liqueur called Hierbas."])],
     "test", [("Hierbas is a sweet liqueur.", "There is a liqueur called Hierbas.", None)]),
    ("qnli", "train.tsv",
     [T.join(["index", "question", "sentence", "label"]),
      T.join(["0", "When did the third Digimon series begin?",
              "Unlike the two seasons before it, the third season is darker.", "not_entailment"])],
     "train", [("When did the third Digimon series begin?",
                "Unlike the two seasons before it, the third season is darker.", "not_entailment")]),
    ("rte", "dev.tsv",
     [T.join(["index", "sentence1", "sentence2", "label"]),
      T.join(["0", "Dana Reeve, the widow of the actor, died at 44.", "Christopher Reeve had an accident.",
              "not_entailment"])],
     "dev", [("Dana Reeve, the widow of the actor, died at 44.", "Christopher Reeve had an accident.",
              "not_entailment")]),
    ("wnli", "train.tsv",
     [T.join(["index", "sentence1", "sentence2", "label"]),
      T.join(["0", "I stuck a pin through a carrot. When I pulled the pin out, it had a hole.",
              "The carrot had a hole.", "1"])],
     "train", [("I stuck a pin through a carrot. When I pulled the pin out, it had a hole.",
                "The carrot had a hole.", "1")]),
    ("rte", "test.tsv",
     [T.join(["index", "sentence1", "sentence2"]),
      T.join(["0", "Mangla was summoned after Madhumita's sister told police.", "Madhumita was a poet."])],
     "test", [("Mangla was summoned after Madhumita's sister told police.", "Madhumita was a poet.", None)]),
]


@pytest.mark.parametrize("task,file_name,lines,split,expected", GLUE_CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in GLUE_CASES])
def test_glue_layouts(tmp_path, task, file_name, lines, split, expected):
    write(tmp_path, file_name, lines)
    examples = read_examples(task, tmp_path, split)
    assert triples(examples) == expected
    assert all(isinstance(e, InputExample) for e in examples)


def test_guid_names_split_and_id_or_line(tmp_path):
    # CoLA has no id column: the guid is split + line number. QQP has one: split + id.
    write(tmp_path, "train.tsv", ["s" + T + "1" + T + "" + T + "a.", "s" + T + "0" + T + "*" + T + "b."])
    assert [e.guid for e in read_examples("cola", tmp_path, "train")] == ["train-1", "train-2"]
    write(tmp_path, "dev.tsv", [T.join(["id", "qid1", "qid2", "question1", "question2", "is_duplicate"]),
                                T.join(["777", "1", "2", "q1?", "q2?", "1"])])
    assert [e.guid for e in read_examples("qqp", tmp_path, "dev")] == ["dev-777"]


def test_label_lists_and_metrics_of_the_table():
    assert get_labels("mnli") == ["contradiction", "entailment", "neutral"]
    assert get_labels("qnli") == get_labels("rte") == ["entailment", "not_entailment"]
    assert get_labels("sts-b") == [] and get_num_labels("sts-b") == 1
    assert get_task("sts-b").output_mode == "regression"
    assert get_num_labels("mnli-mm") == 3
    assert {name: TASKS[name].metric for name in ("cola", "mrpc", "qqp", "sts-b", "sst-2", "tnews")} == {
        "cola": "mcc", "mrpc": "acc_and_f1", "qqp": "acc_and_f1", "sts-b": "pearson_and_spearman",
        "sst-2": "acc", "tnews": "acc"}
    # mnli-mm shares mnli's training file, but reads the mismatched dev and test files.
    assert TASKS["mnli-mm"].files == {"train": "train.tsv", "dev": "dev_mismatched.tsv",
                                      "test": "test_mismatched.tsv"}


# --------------------------------------------------------------------------------------------------
# ChineseGLUE
# --------------------------------------------------------------------------------------------------
def test_tnews(tmp_path):
    write(tmp_path, "toutiao_category_dev.txt", [
        "6552277613866385923_!_104_!_news_finance_!_股票中的突破形态_!_股票",
        "6553534223167258884_!_103_!_news_sports_!_如果詹姆斯最巅峰的时候出现了，杜兰特是否能够顶得住压力呢？_!_",
    ])
    examples = read_examples("tnews", tmp_path, "dev")
    # No header: the first line is an example (the ChineseGLUE baseline skips it; we do not).
    assert triples(examples) == [("股票中的突破形态", None, "104"),
                                 ("如果詹姆斯最巅峰的时候出现了，杜兰特是否能够顶得住压力呢？", None, "103")]
    assert examples[0].guid == "dev-6552277613866385923"
    labels = get_labels("tnews")
    assert len(labels) == 15 and labels[0] == "100" and labels[-1] == "116"
    assert "105" not in labels and "111" not in labels


def test_tnews_label_code_105_does_not_exist(tmp_path):
    path = write(tmp_path, "toutiao_category_train.txt", [
        "1_!_104_!_news_finance_!_标题一_!_", "2_!_105_!_news_none_!_标题二_!_"])
    with pytest.raises(DataError) as err:
        read_examples("tnews", tmp_path, "train")
    assert f"{path}:2" in str(err.value) and "'105'" in str(err.value)


def test_lcqmc(tmp_path):
    write(tmp_path, "train.txt", ["喜欢打篮球的男生喜欢什么样的女生" + T + "爱打篮球的男生喜欢什么样的女生" + T + "1",
                                  "大家觉得她好看吗" + T + "大家觉得跑男好看吗？" + T + "0"])
    assert triples(read_examples("lcqmc", tmp_path, "train")) == [
        ("喜欢打篮球的男生喜欢什么样的女生", "爱打篮球的男生喜欢什么样的女生", "1"),
        ("大家觉得她好看吗", "大家觉得跑男好看吗？", "0")]


def test_lcqmc_file_with_an_unexpected_header_is_pointed_out(tmp_path):
    path = write(tmp_path, "dev.txt", ["text_a" + T + "text_b" + T + "label", "a" + T + "b" + T + "1"])
    with pytest.raises(DataError) as err:
        read_examples("lcqmc", tmp_path, "dev")
    message = str(err.value)
    assert f"{path}:1" in message and "'label'" in message and "header" in message


def test_xnli_header_and_contradictory_alias(tmp_path):
    write(tmp_path, "train.tsv", [
        "premise" + T + "hypo" + T + "label",
        "从 概念 上 看 , 奶油 收入 有 两 个 基本 方面 产品 和 地理 ." + T + "产品 和 地理 是 什么 使 奶油 抹 霜 工作 ." + T + "neutral",
        "男 女 同性恋 ." + T + "异性恋者" + T + "contradictory"])
    assert triples(read_examples("xnli", tmp_path, "train")) == [
        ("从 概念 上 看 , 奶油 收入 有 两 个 基本 方面 产品 和 地理 .", "产品 和 地理 是 什么 使 奶油 抹 霜 工作 .", "neutral"),
        ("男 女 同性恋 .", "异性恋者", "contradiction")]


def test_inews_train_and_unlabelled_test(tmp_path):
    header = "label_!_id_!_title_!_content"
    write(tmp_path, "train.txt", [header, "1_!_bbf2e8a4_!_问大家一下，杭州的外国人多吗_!_g20峰会之后，杭州的外国人是不是多起来了？"])
    write(tmp_path, "test.txt", [header, "0_!_00005a3e_!_九江办好人民满意教育_!_近3年来，九江市努力办好人民满意教育。"])
    train = read_examples("inews", tmp_path, "train")
    assert triples(train) == [("问大家一下，杭州的外国人多吗", "g20峰会之后，杭州的外国人是不是多起来了？", "1")]
    assert train[0].guid == "train-bbf2e8a4"
    assert triples(read_examples("inews", tmp_path, "test")) == [
        ("九江办好人民满意教育", "近3年来，九江市努力办好人民满意教育。", None)]


def test_a_missing_header_is_not_swallowed(tmp_path):
    # inews expects a header; a file that starts with an example must not lose that example silently.
    path = write(tmp_path, "dev.txt", ["2_!_id1_!_标题_!_内容", "0_!_id2_!_标题_!_内容"])
    with pytest.raises(DataError) as err:
        read_examples("inews", tmp_path, "dev")
    assert f"{path}:1" in str(err.value) and "header" in str(err.value)


# --------------------------------------------------------------------------------------------------
# The generic task
# --------------------------------------------------------------------------------------------------
def test_generic_by_column_name_with_header(tmp_path):
    write(tmp_path, "train.tsv", ["id" + T + "text" + T + "label", "1" + T + "great car" + T + "positive",
                                  "2" + T + "meh" + T + "neutral", "3" + T + "awful" + T + "negative",
                                  "4" + T + "fine" + T + "positive"])
    write(tmp_path, "dev.tsv", ["id" + T + "text" + T + "label", "9" + T + "so-so" + T + "neutral"])
    # Labels are the distinct training labels, sorted: the order (and so the ids) depends on nothing else.
    assert get_labels("generic", tmp_path) == ["negative", "neutral", "positive"]
    assert triples(read_examples("generic", tmp_path, "dev")) == [("so-so", None, "neutral")]


def test_generic_by_index_without_header_and_a_text_pair(tmp_path):
    write(tmp_path, "train.tsv", ["yes" + T + "a cat" + T + "a feline", "no" + T + "a cat" + T + "a truck"])
    options = dict(label_column=0, text_a_column=1, text_b_column=2, has_header=False)
    assert triples(read_examples("generic", tmp_path, "train", **options)) == [
        ("a cat", "a feline", "yes"), ("a cat", "a truck", "no")]
    assert get_labels("generic", tmp_path, **options) == ["no", "yes"]


def test_generic_csv_with_quoted_commas_and_line_breaks(tmp_path):
    path = write(tmp_path, "train.csv", ['label,text', 'pos,"fast, quiet, smooth"',
                                         'neg,"two', 'lines"', 'pos,plain'])
    examples = read_examples("generic", tmp_path, "train", file_format="csv")
    assert triples(examples) == [("fast, quiet, smooth", None, "pos"), ("two\nlines", None, "neg"),
                                 ("plain", None, "pos")]
    # Guids keep the line each record starts on, even after a record that spans two lines.
    assert [e.guid for e in examples] == ["train-2", "train-3", "train-5"]
    assert path.name == "train.csv"


def test_generic_dev_label_unseen_in_training_file(tmp_path):
    write(tmp_path, "train.tsv", ["label" + T + "text", "pos" + T + "good", "neg" + T + "bad"])
    path = write(tmp_path, "dev.tsv", ["label" + T + "text", "pos" + T + "nice", "meh" + T + "hm"])
    with pytest.raises(DataError) as err:
        read_examples("generic", tmp_path, "dev")
    assert f"{path}:3" in str(err.value) and "'meh'" in str(err.value)


def test_generic_unknown_column_name_suggests_the_closest(tmp_path):
    path = write(tmp_path, "train.tsv", ["sentiment" + T + "text", "pos" + T + "good"])
    with pytest.raises(DataError) as err:
        read_examples("generic", tmp_path, "train", label_column="sentimnt")
    assert str(path) in str(err.value) and "'sentiment'" in str(err.value)


def test_generic_test_file_needs_no_label_column(tmp_path):
    write(tmp_path, "test.tsv", ["text", "what a ride"])
    assert triples(read_examples("generic", tmp_path, "test")) == [("what a ride", None, None)]


def test_generic_test_file_with_a_label_column_keeps_its_labels(tmp_path):
    """A labeled test file (the demo's) is read with its labels, checked against the training file's."""
    write(tmp_path, "train.tsv", ["label" + T + "text", "pos" + T + "good", "neg" + T + "bad"])
    write(tmp_path, "test.tsv", ["text" + T + "label", "what a ride" + T + "pos"])
    assert triples(read_examples("generic", tmp_path, "test")) == [("what a ride", None, "pos")]
    write(tmp_path, "test.tsv", ["text" + T + "label", "what a ride" + T + "meh"])
    with pytest.raises(DataError, match="test.tsv:2: unknown label 'meh'"):
        read_examples("generic", tmp_path, "test")


def test_generic_column_names_need_a_header():
    with pytest.raises(ValueError, match="has_header"):
        make_generic_task(label_column="label", has_header=False)


# --------------------------------------------------------------------------------------------------
# Bad data: every error names the file and the 1-based line
# --------------------------------------------------------------------------------------------------
def test_too_few_columns(tmp_path):
    path = write(tmp_path, "train.tsv", ["Quality" + T + "#1 ID" + T + "#2 ID" + T + "#1 String" + T + "#2 String",
                                         "1" + T + "1" + T + "2" + T + "a" + T + "b",
                                         "0" + T + "3" + T + "4" + T + "only one sentence"])
    with pytest.raises(DataError) as err:
        read_examples("mrpc", tmp_path, "train")
    message = str(err.value)
    assert f"{path}:3" in message and "at least 5 fields" in message and "found 4" in message


def test_a_tab_inside_a_generic_text_is_an_extra_field_not_a_cut_text(tmp_path):
    # The label column last: the tweet's tail would otherwise become a label of its own.
    path = write(tmp_path, "train.tsv", ["text" + T + "label", "good car" + T + "pos",
                                         "bad" + T + "car" + T + "neg", "so so" + T + "neu"])
    with pytest.raises(DataError) as err:
        read_examples("generic", tmp_path, "train", label_column="label")
    message = str(err.value)
    assert message.startswith(f"{path}:3: expected 2 fields separated by '\\t'") and "found 3" in message
    assert "--file_format csv" in message and "double quotes" in message


def test_a_comma_inside_a_generic_csv_text_says_how_to_quote_it(tmp_path):
    write(tmp_path, "train.csv", ["label,text", 'pos,"good, really"', "neg,bad, really"])
    with pytest.raises(DataError) as err:
        read_examples("generic", tmp_path, "train", file_format="csv")
    assert f"{tmp_path / 'train.csv'}:3: expected 2 fields" in str(err.value)
    assert "must be in double quotes" in str(err.value)


def test_a_separator_inside_a_tnews_title_is_an_extra_field(tmp_path):
    good = "6552277613866385923_!_104_!_news_finance_!_股票中的突破形态_!_股票"
    bad = "6552277613866385924_!_102_!_news_entertainment_!_标题_!_里有分隔符_!_关键词"
    path = write(tmp_path, "toutiao_category_train.txt", [good, bad])
    with pytest.raises(DataError, match=rf"{path}:2: expected 5 fields separated by '_!_' .*found 6"):
        read_examples("tnews", tmp_path, "train")


def test_a_headerless_generic_file_keeps_the_count_of_its_first_line(tmp_path):
    write(tmp_path, "train.tsv", ["pos" + T + "good car", "neg" + T + "bad" + T + "car"])
    task = make_generic_task(label_column=0, text_a_column=1, has_header=False)
    with pytest.raises(DataError, match=r"train.tsv:2: expected 2 fields"):
        read_examples(task, tmp_path, "train")


def test_mnli_label_column_must_not_be_a_sentence_column(tmp_path):
    # 10 fields: -1 would be sentence2 itself. At least 11 are needed.
    header = T.join(["index", "promptID", "pairID", "genre", "b1", "b2", "p1", "p2", "sentence1",
                     "sentence2", "label1", "gold_label"])
    path = write(tmp_path, "train.tsv", [header, T.join(["0"] * 8 + ["premise", "neutral"])])
    with pytest.raises(DataError, match=rf"{path}:2: expected at least 11 fields"):
        read_examples("mnli", tmp_path, "train")


def test_unknown_label(tmp_path):
    path = write(tmp_path, "dev.tsv", [T.join(["index", "sentence1", "sentence2", "label"]),
                                       T.join(["0", "a", "b", "entailment"]),
                                       T.join(["1", "a", "b", "contradiction"])])
    with pytest.raises(DataError) as err:
        read_examples("rte", tmp_path, "dev")
    assert f"{path}:3" in str(err.value) and "'contradiction'" in str(err.value)


def test_regression_label_must_be_a_number(tmp_path):
    header = T.join(["index", "genre", "filename", "year", "old_index", "source1", "source2",
                     "sentence1", "sentence2", "score"])
    path = write(tmp_path, "train.tsv", [header, T.join(["0"] * 7 + ["a", "b", "high"])])
    with pytest.raises(DataError, match=rf"{path}:2: the label 'high' is not a number"):
        read_examples("sts-b", tmp_path, "train")


@pytest.mark.parametrize("lines", [[], ["sentence" + T + "label"]], ids=["empty", "header-only"])
def test_file_without_examples(tmp_path, lines):
    path = tmp_path / "train.tsv"
    path.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_examples("sst-2", tmp_path, "train")
    assert str(path) in str(err.value)


def test_missing_file_names_the_path_and_the_expected_files(tmp_path):
    write(tmp_path, "train.tsv", ["sentence" + T + "label", "good" + T + "1"])
    with pytest.raises(DataError) as err:
        read_examples("sst-2", tmp_path, "dev")
    message = str(err.value)
    assert str(tmp_path / "dev.tsv") in message
    assert "train.tsv, dev.tsv, test.tsv" in message and "holds: train.tsv" in message


def test_missing_data_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_examples("tnews", tmp_path / "nowhere", "train")


def test_invalid_utf8_names_the_line(tmp_path):
    path = tmp_path / "train.txt"
    path.write_bytes("好".encode() + T.encode() + b"ok" + T.encode() + b"1\n" + b"\xff\xfe" + T.encode() + b"x\t0\n")
    with pytest.raises(DataError, match=rf"{path}:2: not valid UTF-8"):
        read_examples("lcqmc", tmp_path, "train")


def test_control_characters_pass_through_untouched(tmp_path):
    # Only "\n" ends a line. A lone "\r", a vertical tab or U+2028 belongs to the text; the tokenizer
    # decides what to do with it. A Windows "\r\n" line ending is not part of the text.
    text = "odd\rtext\x0bwith\u2028breaks\x00and a NUL"
    write(tmp_path, "train.tsv", ["sentence" + T + "label", text + T + "1"], newline="\r\n")
    assert triples(read_examples("sst-2", tmp_path, "train")) == [(text, None, "1")]


def test_byte_order_mark_and_blank_lines_are_skipped(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_bytes(b"\xef\xbb\xbfsentence\tlabel\n\ngood\t1\n\n")
    assert triples(read_examples("sst-2", tmp_path, "train")) == [("good", None, "1")]


def test_unknown_task_names_the_closest():
    with pytest.raises(ValueError, match="'sst-2'") as err:
        get_task("sst2")
    assert "known tasks" in str(err.value)
    assert get_task("MRPC") is TASKS["mrpc"]


def test_options_are_only_for_the_generic_task():
    with pytest.raises(TypeError, match="label_column"):
        get_task("mrpc", label_column="x")


def test_unknown_split(tmp_path):
    with pytest.raises(ValueError, match="split"):
        read_examples("mrpc", tmp_path, "validation")


def test_empty_label_in_a_generic_training_file(tmp_path):
    path = write(tmp_path, "train.tsv", ["label" + T + "text", "pos" + T + "good", "" + T + "no label here"])
    with pytest.raises(DataError, match=rf"{path}:3: the label field is empty"):
        get_labels("generic", tmp_path)


# --------------------------------------------------------------------------------------------------
# prepare_demo_data: the tweets demo set
# --------------------------------------------------------------------------------------------------
def run_prepare(out, *args):
    prepare_demo_data.main(["--out", str(out), "--train", "90", "--dev", "30", "--test", "30", *args])
    return tuple((out / f"{split}.tsv").read_bytes() for split in ("train", "dev", "test"))


def test_prepare_demo_data_writes_a_generic_task(tmp_path, capsys):
    run_prepare(tmp_path, "--seed", "7")
    printed = capsys.readouterr().out
    assert "dev majority class" in printed

    train, dev, test = (read_examples("generic", tmp_path, split) for split in ("train", "dev", "test"))
    assert (len(train), len(dev), len(test)) == (90, 30, 30)
    assert get_labels("generic", tmp_path) == ["negative", "neutral", "positive"]
    assert (tmp_path / "train.tsv").read_text(encoding="utf-8").startswith("label\ttext\n")
    # The test split keeps its labels, so --do_predict can score it.
    assert all(e.label in ("negative", "neutral", "positive") for e in test)
    # Disjoint: no dev or test text is a training text, and dev and test share none.
    texts = [{e.text_a for e in part} for part in (train, dev, test)]
    assert not texts[0] & texts[1] and not texts[0] & texts[2] and not texts[1] & texts[2]
    # Stratified: each class's share of dev is the corpus's share, up to rounding.
    corpus = Counter(label for label, _ in prepare_demo_data.read_corpus(prepare_demo_data.corpus_path()))
    total = sum(corpus.values())
    dev_counts = Counter(e.label for e in dev)
    for label, count in corpus.items():
        assert abs(dev_counts[label] - 30 * count / total) < 1
    majority, count = dev_counts.most_common(1)[0]
    assert f"{majority}, {count / 30:.1%}" in printed


def test_prepare_demo_data_is_deterministic(tmp_path):
    first = run_prepare(tmp_path / "a", "--seed", "3")
    again = run_prepare(tmp_path / "b", "--seed", "3")
    other = run_prepare(tmp_path / "c", "--seed", "4")
    assert first == again
    assert first != other


def test_asking_for_a_test_split_leaves_train_and_dev_as_they_were(tmp_path):
    with_test = run_prepare(tmp_path / "a", "--seed", "3")
    prepare_demo_data.main(["--out", str(tmp_path / "b"), "--train", "90", "--dev", "30", "--test", "0",
                            "--seed", "3"])
    assert with_test[:2] == tuple((tmp_path / "b" / f"{s}.tsv").read_bytes() for s in ("train", "dev"))
    assert not (tmp_path / "b" / "test.tsv").exists()


def test_the_real_corpus_is_decoded_without_replacement_characters():
    """The CSV mixes UTF-8 lines with windows-1252 lines (thousands of them); decoding the file as one
    UTF-8 text with errors='replace' put U+FFFD into the demo data. Line by line, none remains, and every
    line that is valid UTF-8 is read exactly as UTF-8."""
    raw_lines = prepare_demo_data.corpus_path().read_bytes().split(b"\n")
    not_utf8 = 0
    for raw in raw_lines:
        try:
            expected = raw.decode("utf-8")
        except UnicodeDecodeError:
            not_utf8 += 1
            expected = None
        decoded = prepare_demo_data.decode_line(raw)
        assert "\ufffd" not in decoded
        if expected is not None:
            assert decoded == expected
    assert not_utf8 > 1000  # the corpus really is mixed: the test would be empty otherwise
    assert not any("\ufffd" in text for _, text in prepare_demo_data.read_corpus(prepare_demo_data.corpus_path()))


def test_decode_line_reads_windows_1252_where_utf8_fails():
    assert prepare_demo_data.decode_line("cars \u2019".encode("utf-8")) == "cars \u2019"
    assert prepare_demo_data.decode_line(b"cars \x92 \x80") == "cars \u2019 \u20ac"  # cp1252's ' and euro sign
    # 0x81 is unassigned in windows-1252: it becomes the control character U+0081, which clean_text drops.
    assert prepare_demo_data.decode_line(b"a\x81b") == "a\x81b"
    assert prepare_demo_data.clean_text("a\x81b") == "ab"


def test_quotas_add_up():
    # exact shares of 5: a 2.5, b 1.5, c 1.0 -> floors 2, 1, 1 (sum 4); the leftover unit goes to the
    # largest remainder (a and b tie at 0.5; ties go by name, so a).
    assert prepare_demo_data.proportional_quotas({"a": 5, "b": 3, "c": 2}, 5) == {"a": 3, "b": 1, "c": 1}


def test_clean_text_keeps_one_line():
    assert prepare_demo_data.clean_text("a\tb\nc\r\nd ") == "a b c d"


# --------------------------------------------------------------------------------------------------
# Labels you did not mean (issue 23, item 8)
# --------------------------------------------------------------------------------------------------
def test_labels_that_differ_only_by_case_or_whitespace_are_an_error_quoting_both(tmp_path):
    """'positive', 'positive ' and 'Positive' used to become three classes."""
    path = write(tmp_path, "train.tsv", ["label" + T + "text", "positive" + T + "a good day",
                                         "negative" + T + "a bad day", "positive " + T + "a fine day",
                                         "Positive" + T + "a great day"])
    with pytest.raises(DataError) as err:
        get_labels("generic", tmp_path)
    assert str(err.value) == (f"{path}:4: label 'positive ' differs from 'positive' (train.tsv:2) only by case or "
                              "surrounding whitespace; write one spelling, or pass --distinct_label_spellings if "
                              "they are different classes")
    with pytest.raises(DataError, match="'positive '"):
        read_examples("generic", tmp_path, "train")


def test_distinct_label_spellings_keeps_them_as_classes(tmp_path):
    write(tmp_path, "train.tsv", ["label" + T + "text", "positive" + T + "a", "Positive" + T + "b", "neg" + T + "c"])
    assert get_labels("generic", tmp_path, distinct_label_spellings=True) == ["Positive", "neg", "positive"]
    assert get_num_labels("generic", tmp_path, distinct_label_spellings=True) == 3


def test_the_distinct_label_spellings_flag_reaches_the_task(tmp_path):
    import argparse
    from bert_read_step_to_step.tasks import add_generic_task_options, generic_task_options
    parser = argparse.ArgumentParser()
    parser.add_argument("--task_name")
    add_generic_task_options(parser)
    options = generic_task_options(parser.parse_args(["--task_name", "generic", "--distinct_label_spellings"]))
    assert get_task("generic", **options).distinct_label_spellings
    assert not get_task("generic", **generic_task_options(parser.parse_args(["--task_name", "generic"]))) \
        .distinct_label_spellings


def test_a_training_file_with_one_label_is_an_error_not_a_regression(tmp_path):
    """One label used to give num_labels 1, which the model trains as a regression (MSE), scoring 1.0."""
    path = write(tmp_path, "train.tsv", ["label" + T + "text", "positive" + T + "a good day",
                                         "positive" + T + "a fine day"])
    with pytest.raises(DataError) as err:
        get_num_labels("generic", tmp_path)
    assert str(err.value) == (f"{path}: only one label in train.tsv: 'positive'; a classifier needs examples of "
                              "at least two classes")
    with pytest.raises(DataError, match="only one label in train.tsv"):
        read_examples("generic", tmp_path, "train")


def test_a_training_set_smaller_than_one_batch_gets_a_warning_text():
    from bert_read_step_to_step.tasks import small_training_set_warning
    assert small_training_set_warning("data/train.tsv", 1, 8) == (
        "data/train.tsv: only 1 training example(s), fewer than one batch of 8: every step sees the same "
        "examples, and the scores of this run say little")
    assert small_training_set_warning("data/train.tsv", 8, 8) is None


# --------------------------------------------------------------------------------------------------
# CSV quotes (issue 23, item 11)
# --------------------------------------------------------------------------------------------------
CSV_HEAD = ["label,text", "positive,a good day", "negative,a bad day"]


def test_a_quote_that_never_closes_names_the_line_where_it_opens(tmp_path):
    """It used to swallow the rest of the file: here lines 5 to 8, and with them every 'neutral'."""
    path = write(tmp_path, "train.csv", CSV_HEAD + ['positive,"a ""fine"" day"', 'negative,"cold, wet, grey',
                                                    "neutral,an ordinary day", "neutral,nothing happened",
                                                    "positive,sunny"])
    with pytest.raises(DataError) as err:
        read_examples("generic", tmp_path, "train", file_format="csv")
    assert str(err.value).startswith(f"{path}:5: a quote opens here and never closes, so lines 5-8 (the rest "
                                     "of the file) would be read as one field")


def test_a_quote_closed_too_late_names_the_records_it_swallowed(tmp_path):
    path = write(tmp_path, "train.csv", CSV_HEAD + ['positive,"great day', "neutral,an ordinary day",
                                                    'negative,bad day"', "neutral,nothing happened"])
    with pytest.raises(DataError) as err:
        read_examples("generic", tmp_path, "train", file_format="csv")
    assert str(err.value) == (f"{path}:5: this line reads as a record of the file (['neutral', 'an ordinary day']), "
                              "but it sits inside a quoted field that opens on line 4; is a quote on line 4 "
                              "missing its closing quote?")


def test_a_multi_line_quoted_text_stays_allowed(tmp_path):
    """Lines with a comma but not a label of the file, or without the file's field count, are just text."""
    write(tmp_path, "train.csv", CSV_HEAD + ['positive,"Dear all,\nwhat a day, really,\nlovely\n"',
                                             'negative,"bad\nnews, sadly"', "positive,end"])
    examples = read_examples("generic", tmp_path, "train", file_format="csv")
    assert [(e.guid, e.label, e.text_a) for e in examples[2:]] == [
        ("train-4", "positive", "Dear all,\nwhat a day, really,\nlovely\n"),
        ("train-8", "negative", "bad\nnews, sadly"), ("train-10", "positive", "end")]


def test_a_dev_label_spelled_otherwise_than_in_training_says_so(tmp_path):
    write(tmp_path, "train.tsv", ["label" + T + "text", "positive" + T + "a", "negative" + T + "b"])
    path = write(tmp_path, "dev.tsv", ["label" + T + "text", "negative" + T + "c", "Positive " + T + "d"])
    with pytest.raises(DataError) as err:
        read_examples("generic", tmp_path, "dev")
    assert str(err.value) == (f"{path}:3: unknown label 'Positive '; task 'generic' has labels ['negative', "
                              "'positive']; it differs from the label 'positive' only by case or surrounding "
                              "whitespace")
