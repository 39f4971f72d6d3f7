"""The task side of fine-tuning, in the order the data flows:

tasks.py              files of a task -> InputExample(guid, text_a, text_b, label)   (the task table lives here)
features.py           InputExample    -> InputFeatures (token ids, masks, label id) -> cache file -> padded batches
metrics.py            predictions     -> scores (acc, F1, Matthews correlation, Pearson/Spearman)
prepare_demo_data.py  writes the tweets demo set that the `generic` task reads
cli_help.py           the --help formatter that shows every flag's default

Import from the modules themselves (`from bert_read_step_to_step.tasks import read_examples`), so each name
says where it lives. This file imports nothing, which also lets every module run on its own with
`python -m bert_read_step_to_step.<module>`.
"""
