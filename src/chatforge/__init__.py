"""chatforge: conversations between people and bots, and the training data they become."""

__version__ = "0.1.0"
