"""The task side of fine-tuning, in the order the data flows:

tasks.py              files of a task -> InputExample(guid, text_a, text_b, label)   (the task table lives here)
features.py           InputExample    -> InputFeatures (token ids, masks, label id) -> cache file -> padded batches
metrics.py            predictions     -> scores (acc, F1, Matthews correlation, Pearson/Spearman)

The machinery of one run_classifier run, in the order a run uses it:
runtime.py            device, torchrun ranks, log, precision   -> Runtime; DataParallel/DDP wrapping
model_setup.py        flags + config -> lower-casing, re-init selectors, vocabulary check, the --list_keys table
batches.py            data size + flags -> TrainingPlan; each epoch's batches (seeded), where a resume goes on
optimization.py       model + flags  -> parameter groups, optimizer, lr schedule; one optimizer step
checkpoints.py        TrainState <-> checkpoint-N/ (save, the resume check of the trajectory, resume)
run_folder.py         output_dir: the lock, the run records, the results files

prepare_demo_data.py  writes the tweets demo set that the `generic` task reads
precision.py          fp32 or bf16: what the hardware computes natively, and the autocast a run uses
cli_help.py           the --help formatter that shows every flag's default
article_line.py       the article's one line, run on the real checkpoint next to reinit_keys (a demo)
reinit_sweep.py       fine-tunes over seeds x re-init settings, each run `python run_classifier.py ...` in its
                      own process (here, on a Dask cluster or on Slurm), and reports mean, spread and plots
                      (Zhang et al.'s experiment); the parts are in sweep/

Import from the modules themselves (`from bert_read_step_to_step.tasks import read_examples`), so each name
says where it lives. This file imports nothing, which also lets every module run on its own with
`python -m bert_read_step_to_step.<module>`.
"""
