"""``--validate``: the checks of model, data, template, loss tokens and storage before training."""
