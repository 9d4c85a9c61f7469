"""Exceptions raised by hpcnn.

Every failed library call raises a subclass of :class:`HpcnnError` chosen by the call's hpcnn_status, carrying
the library's message (what was wrong and where, e.g. ``layer 2 (dense): expected a flat input ...``).
Each class also derives from the matching built-in exception, so ordinary ``except ValueError`` /
``except OSError`` code works too:

=====================  ==========================  ===================================================
status (hpcnn.h)       exception                   also a
=====================  ==========================  ===================================================
HPCNN_INVALID_ARGUMENT :class:`InvalidArgumentError` ValueError (bad value, shape mismatch, bad label)
HPCNN_INVALID_STATE    :class:`InvalidStateError`    RuntimeError (e.g. fit before compile)
HPCNN_IO_ERROR         :class:`HpcnnIOError`         OSError (file missing, unreadable, unwritable)
HPCNN_INVALID_FILE     :class:`InvalidFileError`     ValueError (corrupt, truncated, wrong version)
HPCNN_OUT_OF_MEMORY    :class:`HpcnnMemoryError`     MemoryError
HPCNN_NUMERIC_ERROR    :class:`NumericError`         ArithmeticError (training diverged: NaN loss)
HPCNN_INTERNAL         :class:`InternalError`        RuntimeError (a bug in the library; please report)
=====================  ==========================  ===================================================
"""


class HpcnnError(Exception):
    """Base class of every error the library reports.

    Attributes:
        message: the library's message (also ``str(error)``).
        status: the hpcnn_status code (see hpcnn.h); 0 for errors found by the Python package itself.
    """

    status = 0

    def __init__(self, message, status=None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class InvalidArgumentError(HpcnnError, ValueError):
    """A bad value, a wrong shape or size, an unknown layer or parameter, a label out of range."""
    status = 1


class InvalidStateError(HpcnnError, RuntimeError):
    """The call does not fit the object's state: fitting an uncompiled model, using a closed model."""
    status = 2


class HpcnnIOError(HpcnnError, OSError):
    """A file could not be found, read or written."""
    status = 3


class InvalidFileError(HpcnnError, ValueError):
    """A file's content is corrupt, truncated, of an unsupported version, or fails its checksum."""
    status = 4


class HpcnnMemoryError(HpcnnError, MemoryError):
    """The library could not allocate memory."""
    status = 5


class NumericError(HpcnnError, ArithmeticError):
    """Training diverged: the loss became NaN or infinite (lower the learning rate)."""
    status = 6


class InternalError(HpcnnError, RuntimeError):
    """A bug in the library: the message says where; please report it."""
    status = 99


_BY_STATUS = {cls.status: cls for cls in
              (InvalidArgumentError, InvalidStateError, HpcnnIOError, InvalidFileError, HpcnnMemoryError, NumericError, InternalError)}


def error_for_status(status, message):
    """The exception for an hpcnn_status (an unknown status gives a plain HpcnnError)."""
    cls = _BY_STATUS.get(status, HpcnnError)
    return cls(message, status)
