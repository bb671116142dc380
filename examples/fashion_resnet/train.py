"""A training loop of your own for scaling-optuna's [trainer] objective: Adam instead of the built-in SGD."""

import itertools

import torch
from torch.nn import functional as F


def evaluate(model, data):
    """Cross-entropy and error rate of `model` on `data` = (x, y), in batches."""
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(x) for x in data[0].split(512)])
    return F.cross_entropy(logits, data[1]).item(), (logits.argmax(1) != data[1]).float().mean().item()


def fit(model, train, val, test, report, params):
    """Adam at the trial's lr; report every epoch; keep the weights of the best validation epoch."""
    x, y = train
    optimizer = torch.optim.Adam(model.parameters(), lr=params["lr"], weight_decay=params["weight_decay"])
    best, state = None, None
    for epoch in itertools.count(1):
        model.train()
        for batch in torch.randperm(len(y), device=y.device).split(64):
            optimizer.zero_grad()
            F.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
        val_loss, val_error = evaluate(model, val)
        if best is None or val_loss < best["val_loss"]:
            test_loss, test_error = evaluate(model, test)
            best = {"val_loss": val_loss, "val_error": val_error, "test_loss": test_loss, "test_error": test_error}
            state = {k: v.clone() for k, v in model.state_dict().items()}
        if report(epoch, val_loss):  # True: patience or max_epochs reached; the pruner raises TrialPruned
            break
    model.load_state_dict(state)
    return best
