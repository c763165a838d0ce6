"""mdeblur: M-Deblurgan joint defocus deblurring and x2 super-resolution for optical microscope images."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy, so `mdeblur --help` does not pay for importing torch.
    if name == "load_model":
        from .weights import load_model

        return load_model
    if name == "restore_array":
        from .restore.arrays import restore_array

        return restore_array
    if name == "restore_file":
        from .restore.files import restore_file

        return restore_file
    raise AttributeError(name)


__all__ = ["__version__", "load_model", "restore_array", "restore_file"]
