"""The embedded default model (`model.py`) and the short supervised curriculum that gives it a
measurable skill (`skills.py`); `longact model build-tiny | train-tiny-skills` runs them."""
