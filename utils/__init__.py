"""Shared library: data contract, input pipelines, losses, pseudo labels and the training engine.

Importing this package imports ``models``, whose ``configure_environment`` sets the TensorFlow switches
that must be in place before TensorFlow itself is imported.
"""
import models  # noqa: F401  (TensorFlow environment switches; models is the bottom layer)
