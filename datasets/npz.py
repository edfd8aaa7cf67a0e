"""Your own images from a .npz of arrays: x_train, y_train, x_test, y_test and, optionally, class_names.

Images are uint8, (N, H, W) for grey or (N, H, W, C) with C 1 or 3, the same H, W, C for train
and test. Labels are integers 0..K-1, as (N,) or as Keras' (N, 1). class_names, if given, is K
strings; without it K is the largest label + 1 and the classes are named "0".."K-1". Other
arrays in the file are ignored. Read with allow_pickle=False: an object array (a pickle) is
refused, never unpickled.
"""

from pathlib import Path

import numpy as np

from datasets._common import DataError, Dataset, check_counts, describe, int_labels, reading

KEYS = ("x_train", "y_train", "x_test", "y_test")
CLASS_NAMES = "class_names"  # the optional array
CHANNELS = (1, 3)
HINT = ("save uint8 images and integer labels as x_train, y_train, x_test, y_test (and class_names, "
        "optional) with numpy.savez")


def load(path: Path) -> Dataset:
    if path.is_dir():
        raise DataError(f"{path}: a folder, not a .npz file (for a folder of images use the folder "
                        f"data set); {HINT}")
    if not path.is_file():
        raise DataError(f"{path}: no such file; {HINT}")
    arrays = _read(path)

    x_train, x_test = (_images(path, key, arrays[key]) for key in ("x_train", "x_test"))
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(f"{path}: x_train images are {_shape(x_train)} but x_test images are "
                        f"{_shape(x_test)} (height x width x channels); give both one shape")
    names = _class_names(path, arrays.get(CLASS_NAMES))
    labels = {key: _label_vector(arrays[key]) for key in ("y_train", "y_test")}
    if names:
        classes = range(len(names))
    else:  # the largest label says how many classes there are (int32 labels: at most 2**31 - 1)
        largest = max([0] + [int(y.max()) for y in labels.values() if y.size and y.dtype.kind in "iu"])
        classes = range(min(largest, np.iinfo(np.int32).max - 1) + 1)
    y_train, y_test = (int_labels(labels[key], classes, f"{path} ({key})", HINT) for key in labels)
    check_counts(x_train, y_train, f"{path} (train)", HINT)
    check_counts(x_test, y_test, f"{path} (test)", HINT)
    _check_every_class_trains(path, y_train, classes, names)
    if not names:
        if len(classes) < 2:
            raise DataError(f"{path}: every label is 0, so there is only one class and a classifier "
                            f"needs at least two; {HINT}")
        names = tuple(str(label) for label in classes)
    return Dataset(path.stem, x_train, y_train, x_test, y_test, names, source="npz", origin=str(path))


def _read(path: Path) -> dict[str, np.ndarray]:
    """The needed arrays of the .npz (class_names only if present), each loaded without pickles."""
    with reading(path, HINT):
        npz = np.load(path, allow_pickle=False)
    if not isinstance(npz, np.lib.npyio.NpzFile):  # np.load also reads a single .npy array
        raise DataError(f"{path}: a single array ({describe(npz)}), not a .npz of named arrays; {HINT}")
    with npz:
        missing = [key for key in KEYS if key not in npz.files]
        if missing:
            held = ", ".join(npz.files) or "no arrays"
            raise DataError(f"{path}: has no {', '.join(missing)} (it holds {held}); {HINT}")
        arrays = {}
        for key in KEYS + ((CLASS_NAMES,) if CLASS_NAMES in npz.files else ()):
            # Object arrays (pickles) fail here, as allow_pickle=False wants.
            with reading(f"{path} ({key})", f"save {key} as a plain numeric or string array, never objects"):
                arrays[key] = npz[key]
    return arrays


def _images(path: Path, key: str, images: np.ndarray) -> np.ndarray:
    """`images` as uint8 NHWC, after checking dtype, rank, channels and that there is at least one."""
    ok = (images.dtype == np.uint8 and images.ndim in (3, 4) and min(images.shape[1:3], default=0) > 0
          and (images.ndim == 3 or images.shape[3] in CHANNELS))
    if not ok:
        raise DataError(f"{path}: {key} is {describe(images)}, expected uint8 images (N, H, W) or "
                        f"(N, H, W, C) with C 1 or 3; {HINT}")
    if len(images) == 0:
        split = key.removeprefix("x_")
        raise DataError(f"{path}: {key} holds no images, too few to {split} on; {HINT}")
    return images[..., np.newaxis] if images.ndim == 3 else images


def _label_vector(labels: np.ndarray) -> np.ndarray:
    """Keras' (N, 1) label column as the (N,) vector; any other shape is left for int_labels to refuse."""
    return labels[:, 0] if labels.ndim == 2 and labels.shape[1] == 1 else labels


def _check_every_class_trains(path: Path, y_train: np.ndarray, classes: range, names: tuple[str, ...]):
    """Refuse a class without training images, as the folder loader refuses an empty class folder.

    Catches labels counted from 1, and keeps a stray huge label from inventing millions of classes.
    """
    present = np.unique(y_train)  # sorted: present[i] == i up to the first missing label
    gaps = np.flatnonzero(present != np.arange(len(present)))
    missing = int(gaps[0]) if gaps.size else len(present)
    if missing >= len(classes):
        return
    if names:
        raise DataError(f"{path} (y_train): no training image has label {missing} ({names[missing]!r}, "
                        f"one of the {len(names)} class_names); every class needs training images")
    counting = " (labels counted from 1?)" if missing == 0 else ""
    raise DataError(f"{path} (y_train): no training image has label {missing}, yet the labels go up to "
                    f"{len(classes) - 1}{counting}; labels must be 0..K-1 with every class in training")


def _class_names(path: Path, names: np.ndarray | None) -> tuple[str, ...]:
    """class_names as a tuple of str (empty if absent), after checking it is at least two distinct strings."""
    if names is None:
        return ()
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise DataError(f"{path}: class_names is {describe(names)}, expected a vector of strings; {HINT}")
    names = tuple(name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
                  for name in names.tolist())
    if len(names) < 2:
        raise DataError(f"{path}: class_names holds {len(names)} name(s), a classifier needs at least "
                        f"two classes; {HINT}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise DataError(f"{path}: class_names repeats {repeated[0]!r}; give each class its own name")
    return names


def _shape(images: np.ndarray) -> str:
    return "x".join(map(str, images.shape[1:]))
