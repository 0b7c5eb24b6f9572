"""Builds the optional C fast path of TFRecord framing; without a compiler the package still installs
and reads TFRecords in pure Python (everything else is in pyproject.toml)."""
from setuptools import Extension, setup

setup(ext_modules=[Extension("loaders.tfrecord._framing", ["loaders/tfrecord/_framing.c"], optional=True)])
