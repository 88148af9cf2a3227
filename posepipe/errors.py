"""Errors that reach the user as one clear sentence (the CLI prints them without a traceback)."""


class PosepipeError(Exception):
    """Base class: the message is a complete sentence meant for the user."""


class ModelError(PosepipeError):
    """A model file is missing, unreadable, of the wrong kind or fails its checksum."""


class ImageError(PosepipeError):
    """An input image cannot be read or used."""
