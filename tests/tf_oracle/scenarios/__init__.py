"""One module per TensorFlow test file (``fifo_queue.py`` for ``fifo_queue_test.py``), each a set of
:class:`harness.Scenario` subclasses named after the TF tests they port."""
