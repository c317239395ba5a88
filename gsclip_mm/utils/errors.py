"""The error that marks one object's data as unusable (not a setup or code error)."""


class ObjectError(ValueError):
    """This object's points, image, camera or box cannot be used.

    Runs skip such an object and count it (training refetches another one,
    testing scores it as a miss) instead of stopping; any other exception
    (a missing file, a bug) still stops the run.
    """
