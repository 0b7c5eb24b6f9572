"""Builds the optional C fast paths: TFRecord framing, and partial JPEG decoding (libjpeg, for crops).
Without a compiler (or libjpeg's headers) the package still installs and works in pure Python,
decoding whole images (everything else is in pyproject.toml)."""
from setuptools import Extension, setup

setup(ext_modules=[
    Extension("loaders.tfrecord._framing", ["loaders/tfrecord/_framing.c"], optional=True),
    Extension("loaders.tfrecord._jpeg", ["loaders/tfrecord/_jpeg.c"], libraries=["jpeg"], optional=True),
])
