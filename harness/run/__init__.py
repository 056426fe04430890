"""One evaluation run: task resolution, modes, the request cache and `run_eval` (`runner`)."""
