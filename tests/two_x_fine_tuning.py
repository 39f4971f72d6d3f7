"""A fine-tuning script written the way transformers 2.x scripts were (Read_Bert_Code's run_classifier.py and
processors/glue.py), run by tests/test_compat_2x.py against this package. It is test material, not an example
to follow: it uses 2.x's names and habits on purpose.

    python tests/two_x_fine_tuning.py --model_name_or_path MODEL --data_file TSV --output_dir OUT

Prints one JSON line with what the test checks.
"""
import argparse
import glob
import json
import os

import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler, TensorDataset

from transformers import (CONFIG_NAME, WEIGHTS_NAME, AdamW, AutoConfig, AutoModelForSequenceClassification,
                          AutoTokenizer, BertConfig, BertForSequenceClassification, BertTokenizer, RobertaConfig,
                          WarmupLinearSchedule, XLNetConfig)

ALL_MODELS = sum((tuple(conf.pretrained_config_archive_map.keys()) for conf in (BertConfig, XLNetConfig,
                                                                                RobertaConfig)), ())
MODEL_CLASSES = {"bert": (BertConfig, BertForSequenceClassification, BertTokenizer)}


class Example:
    def __init__(self, guid, text_a, text_b, label):
        self.guid, self.text_a, self.text_b, self.label = guid, text_a, text_b, label


def read_examples(path):
    with open(path, encoding="utf-8") as reader:
        rows = [line.rstrip("\n").split("\t") for line in reader]
    return [Example(f"row-{i}", text, None, label) for i, (label, text) in enumerate(rows)]


def convert_examples_to_features(examples, tokenizer, label_list, max_length, pad_token):
    """As glue_convert_examples_to_features: encode_plus, pad to max_length by hand, keep input_len."""
    label_map = {label: i for i, label in enumerate(label_list)}
    features = []
    for example in examples:
        inputs = tokenizer.encode_plus(example.text_a, example.text_b, add_special_tokens=True,
                                       max_length=max_length)
        input_ids, token_type_ids = inputs["input_ids"], inputs["token_type_ids"]
        attention_mask = [1] * len(input_ids)
        input_len = len(input_ids)
        padding = max_length - len(input_ids)
        input_ids = input_ids + [pad_token] * padding
        attention_mask = attention_mask + [0] * padding
        token_type_ids = token_type_ids + [0] * padding
        assert len(input_ids) == max_length
        features.append((input_ids, attention_mask, token_type_ids, input_len, label_map[example.label]))
    columns = list(zip(*features))
    return TensorDataset(*(torch.tensor(column, dtype=torch.long) for column in columns))


def collate_fn(batch):
    input_ids, attention_mask, token_type_ids, lens, labels = map(torch.stack, zip(*batch))
    longest = max(lens).item()
    return input_ids[:, :longest], attention_mask[:, :longest], token_type_ids[:, :longest], labels


def evaluate(model, dataset):
    model.eval()
    preds, labels, losses = [], [], []
    for batch in DataLoader(dataset, sampler=SequentialSampler(dataset), batch_size=8, collate_fn=collate_fn):
        with torch.no_grad():
            outputs = model(input_ids=batch[0], attention_mask=batch[1], token_type_ids=batch[2], labels=batch[3])
            tmp_eval_loss, logits = outputs[:2]
        losses.append(tmp_eval_loss.mean().item())
        preds.append(logits.numpy())
        labels.append(batch[3].numpy())
    preds = np.concatenate(preds)
    return {"acc": float((preds.argmax(axis=1) == np.concatenate(labels)).mean()), "loss": float(np.mean(losses)),
            "logits": preds.tolist()}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model_name_or_path", required=True)
    parser.add_argument("--data_file", required=True)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--max_seq_length", type=int, default=32)
    parser.add_argument("--save_steps", type=int, default=3)
    parser.add_argument("--num_train_epochs", type=float, default=2.0)
    args = parser.parse_args()
    torch.manual_seed(42)

    examples = read_examples(args.data_file)
    label_list = sorted({example.label for example in examples})
    config_class, model_class, tokenizer_class = MODEL_CLASSES["bert"]
    config = config_class.from_pretrained(args.model_name_or_path, num_labels=len(label_list), finetuning_task="tweets")
    tokenizer = tokenizer_class.from_pretrained(args.model_name_or_path, do_lower_case=True)
    model = model_class.from_pretrained(args.model_name_or_path, from_tf=bool(".ckpt" in args.model_name_or_path),
                                        config=config)
    pad_token = tokenizer.convert_tokens_to_ids([tokenizer.pad_token])[0]
    dataset = convert_examples_to_features(examples, tokenizer, label_list, args.max_seq_length, pad_token)

    loader = DataLoader(dataset, sampler=RandomSampler(dataset), batch_size=8, collate_fn=collate_fn)
    t_total = int(len(loader) * args.num_train_epochs)
    no_decay = ["bias", "LayerNorm.weight"]
    groups = [
        {"params": [p for n, p in model.named_parameters() if not any(nd in n for nd in no_decay)],
         "weight_decay": 0.01},
        {"params": [p for n, p in model.named_parameters() if any(nd in n for nd in no_decay)], "weight_decay": 0.0}]
    optimizer = AdamW(groups, lr=5e-5, eps=1e-8)
    scheduler = WarmupLinearSchedule(optimizer, warmup_steps=int(t_total * 0.1), t_total=t_total)
    global_step, lrs = 0, []
    model.zero_grad()
    for _ in range(int(args.num_train_epochs)):
        for batch in loader:
            model.train()
            outputs = model(input_ids=batch[0], attention_mask=batch[1], token_type_ids=batch[2], labels=batch[3])
            loss = outputs[0]  # model outputs are tuples in 2.x
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            lrs.append(scheduler.get_last_lr()[0])
            model.zero_grad()
            global_step += 1
            if global_step % args.save_steps == 0:
                output_dir = os.path.join(args.output_dir, f"checkpoint-{global_step}")
                os.makedirs(output_dir, exist_ok=True)
                model.save_pretrained(output_dir)
                torch.save(vars(args), os.path.join(output_dir, "training_args.bin"))
                tokenizer.save_vocabulary(vocab_path=output_dir)

    model.save_pretrained(args.output_dir)
    tokenizer.save_pretrained(args.output_dir)
    final = evaluate(model, dataset)

    # Reload what was saved, and every checkpoint the 2.x glob finds.
    model = model_class.from_pretrained(args.output_dir)
    tokenizer = tokenizer_class.from_pretrained(args.output_dir, do_lower_case=True)
    reloaded = evaluate(model, dataset)
    checkpoints = [os.path.dirname(c) for c in
                   sorted(glob.glob(args.output_dir + "/**/" + WEIGHTS_NAME, recursive=True))]
    results = {}
    for checkpoint in checkpoints:
        results[os.path.basename(checkpoint)] = evaluate(model_class.from_pretrained(checkpoint), dataset)["acc"]

    # The other 2.x way to save: a state dict torch.save'd under WEIGHTS_NAME, with config.json beside it.
    pickled = os.path.join(args.output_dir, "pickled")
    os.makedirs(pickled, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(pickled, WEIGHTS_NAME))
    model.config.to_json_file(os.path.join(pickled, CONFIG_NAME))
    from_pickle = evaluate(model_class.from_pretrained(pickled), dataset)

    # The Auto classes read the same folder.
    auto_config = AutoConfig.from_pretrained(args.output_dir)
    auto_model = AutoModelForSequenceClassification.from_pretrained(args.output_dir)
    auto_tokenizer = AutoTokenizer.from_pretrained(args.output_dir)
    print(json.dumps({
        "all_models": list(ALL_MODELS), "lrs": lrs, "t_total": t_total, "checkpoints": checkpoints,
        "checkpoint_acc": results, "final": final, "reloaded": reloaded, "from_pickle": from_pickle,
        "auto": [type(auto_config).__name__, type(auto_model).__name__, type(auto_tokenizer).__name__],
        "auto_logits": evaluate(auto_model, dataset)["logits"], "vocab_size": len(auto_tokenizer),
    }))


if __name__ == "__main__":
    main()
