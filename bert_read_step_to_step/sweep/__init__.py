"""The re-init sweep (python -m bert_read_step_to_step.reinit_sweep), in the order a sweep uses its parts:

plan.py       settings, seeds, each run's run_classifier command line
data.py       the training subset every run reads, the majority-class baseline
records.py    the output folder's lock, results.json
runs.py       a run's attempt folder, its record, moving the first finished attempt into place
launchers.py  where the runs run: this machine's process pool, a Dask cluster, or Slurm through submitit
attempt.py    what a worker executes for one run (standard library only: it is shipped to the worker by value)
report.py     summary.md, summary.csv, summary.png
curves.py     curves.csv, curves.png: each setting's training loss over the steps, over seeds
main.py       the arguments, and the calls above in that order

bert_read_step_to_step/reinit_sweep.py is the entry point; it imports main.py.
"""
