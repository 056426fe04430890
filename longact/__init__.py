"""The `longact` application: every command-line verb and the demo.

This is the only package that imports both the evaluation harness (`harness`) and the trainer
(`training`); both of those import the benchmark layer (`tasks`) and nothing above it.
"""
