"""Your own images from a folder: one subfolder of PNG or JPEG files per class, decoded with Pillow.

Layout: DIR/<class>/<image>, or DIR/train/<class>/<image> and DIR/test/<class>/<image> with the
same class subfolders in both. The class names are the subfolder names, sorted; label i is the
i-th of them. Without train/ and test/, the test images are held out by a fixed rule: in each
class, sorted by file name, every 5th image (the 5th, 10th, 15th...) goes to test and the others
to training. So every class trains on at least one image, and a class needs 5 to be tested.

Files: .png, .jpg and .jpeg (any case) are images. Names starting with "." (.DS_Store, editor
and notebook leftovers) are ignored everywhere, and so are files beside the class folders (a
README); any other file or folder inside a class folder is refused, so no example is left out
silently.
Pixels are taken as stored: nothing is resized (images of two sizes are refused), EXIF
orientation is not applied. Grey images (modes 1, L, LA) give (H, W, 1), colour images (RGB,
RGBA, palette, CMYK...) give (H, W, 3) with any alpha dropped; when a folder mixes the two, the
grey ones are converted to RGB as well. 16-bit and float images are refused: 8-bit conversion
would clip them.

Not keras.utils.image_dataset_from_directory: it resizes every image to `image_size`, so mixed
sizes cannot be refused, and it decodes inside tf.data, so an unreadable file fails only
mid-training. Here every image is decoded at load time and the first bad one is named.
"""

from pathlib import Path

import numpy as np

from datasets._common import DataError, Dataset, reading

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
TEST_EVERY = 5  # the held-out split: positions 4, 9, 14... (from 0) of each class's sorted files
SPLITS = ("train", "test")
GREY_MODES = frozenset({"1", "L", "LA", "La"})
DEEP_MODES = frozenset({"I", "F", "I;16", "I;16L", "I;16B", "I;16N"})  # more than 8 bits a channel

LAYOUT_HINT = ("put one subfolder of PNG or JPEG images per class in it, or train/ and test/ "
               "holding the same class subfolders")
IMAGE_HINT = "replace it with a readable PNG or JPEG, or remove it"


def load(folder: Path) -> Dataset:
    if folder.is_file():
        raise DataError(f"{folder}: a file, not a folder of images (for a .npz of arrays use the "
                        f"npz data set); {LAYOUT_HINT}")
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder; {LAYOUT_HINT}")
    splits = _split_files(folder)
    classes = tuple(splits["train"])
    if not any(splits["test"].values()):
        raise DataError(f"{folder}: no image is held out for testing (every {TEST_EVERY}th image of a "
                        f"class, sorted by file name, goes to test, so a class needs {TEST_EVERY} or more); "
                        f"add images, or give train/ and test/ subfolders")

    images, labels = {}, {}
    first = None  # the first image read and its (H, W): every other image must have that size
    for split, files_by_class in splits.items():
        images[split], labels[split] = [], []
        for name, files in files_by_class.items():
            label = classes.index(name)
            for path in files:
                image = _read_image(path)
                first = first or (path, image.shape[:2])
                if image.shape[:2] != first[1]:
                    raise DataError(f"{folder}: images differ in size: {first[0]} is {_size(first[1])} "
                                    f"but {path} is {_size(image.shape)} pixels (width x height); "
                                    f"resize them all to one size (nothing is resized here)")
                images[split].append(image)
                labels[split].append(label)

    # Grey and colour in one folder: colour wins, a grey image is the same in RGB.
    colour = any(image.ndim == 3 for split in SPLITS for image in images[split])
    return Dataset(
        folder.resolve().name,
        x_train=_stack(images["train"], colour),
        y_train=np.array(labels["train"], np.int32),
        x_test=_stack(images["test"], colour),
        y_test=np.array(labels["test"], np.int32),
        class_names=classes,
        source="folder",
        origin=str(folder),
    )


def _split_files(folder: Path) -> dict[str, dict[str, list[Path]]]:
    """The image files of each split, by class name (sorted), each class's files sorted by name."""
    present = [split for split in SPLITS if (folder / split).is_dir()]
    if len(present) == 1:
        missing = next(split for split in SPLITS if split not in present)
        raise DataError(f"{folder}: has {present[0]}/ but no {missing}/; add {missing}/ with the same "
                        f"class subfolders, or put the class subfolders directly in {folder}")
    if not present:
        by_class = {name: _image_files(path) for name, path in _class_folders(folder).items()}
        held_out = {name: [path for i, path in enumerate(files) if i % TEST_EVERY == TEST_EVERY - 1]
                    for name, files in by_class.items()}
        train = {name: [path for i, path in enumerate(files) if i % TEST_EVERY != TEST_EVERY - 1]
                 for name, files in by_class.items()}
        return {"train": train, "test": held_out}

    others = [path for path in _visible(folder) if path.is_dir() and path.name not in SPLITS]
    if others:
        raise DataError(f"{others[0]}: a folder beside train/ and test/, which would not be read; "
                        f"move it out, or its images into train/ or test/")
    classes = {split: _class_folders(folder / split) for split in SPLITS}
    if set(classes["test"]) != set(classes["train"]):
        only_train = sorted(set(classes["train"]) - set(classes["test"]))
        only_test = sorted(set(classes["test"]) - set(classes["train"]))
        differences = ([f"{', '.join(only_train)} only in train/"] if only_train else []) + (
            [f"{', '.join(only_test)} only in test/"] if only_test else [])
        raise DataError(f"{folder}: train/ and test/ hold different classes ({'; '.join(differences)}); "
                        f"give both the same class subfolders")
    return {split: {name: _image_files(path) for name, path in classes[split].items()} for split in SPLITS}


def _class_folders(folder: Path) -> dict[str, Path]:
    """The class subfolders of `folder` by name, sorted, after checking there are at least two."""
    entries = _visible(folder)
    classes = {path.name: path for path in entries if path.is_dir()}
    if not entries:
        raise DataError(f"{folder}: empty; {LAYOUT_HINT}")
    if not classes:
        images = [path for path in entries if path.suffix.lower() in IMAGE_SUFFIXES]
        found = f", only files such as {images[0].name}" if images else ""
        raise DataError(f"{folder}: no class subfolders{found}; {LAYOUT_HINT}")
    if len(classes) == 1:
        raise DataError(f"{folder}: only one class subfolder ({next(iter(classes))}), a classifier needs "
                        f"at least two; {LAYOUT_HINT}")
    return classes


def _image_files(class_folder: Path) -> list[Path]:
    """The images of one class, sorted by name; anything else there is refused rather than skipped."""
    files = []
    for path in _visible(class_folder):
        if path.is_dir():
            raise DataError(f"{path}: a folder inside the class folder {class_folder.name}/, which is not "
                            f"read; images must sit directly in their class folder")
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise DataError(f"{path}: not a PNG or JPEG file (only {', '.join(IMAGE_SUFFIXES)} are read); "
                            f"convert it or move it out of {class_folder}")
        files.append(path)
    if not files:
        raise DataError(f"{class_folder}: a class folder without images; add PNG or JPEG images "
                        f"or remove the folder")
    return files


def _visible(folder: Path) -> list[Path]:
    """The entries of `folder` sorted by name, without hidden ones (.DS_Store, .ipynb_checkpoints)."""
    with reading(folder, "check that the folder can be listed"):
        entries = list(folder.iterdir())
    return sorted((path for path in entries if not path.name.startswith(".")), key=lambda path: path.name)


def _read_image(path: Path) -> np.ndarray:
    """The image at `path` as uint8 (H, W) if grey or (H, W, 3) if colour."""
    from PIL import Image  # imported here: the built-in data sets need no Pillow

    with reading(path, IMAGE_HINT), Image.open(path) as image:
        if image.mode in DEEP_MODES:
            raise DataError(f"{path}: {image.mode} pixels (more than 8 bits a channel), which 8-bit "
                            f"conversion would clip; save it as an 8-bit PNG or JPEG")
        image.load()  # decodes now, so a truncated file fails here, named
        return np.asarray(image.convert("L" if image.mode in GREY_MODES else "RGB"))


def _size(shape) -> str:
    """(H, W, ...) as people write an image size: width x height."""
    return f"{shape[1]}x{shape[0]}"


def _stack(images: list[np.ndarray], colour: bool) -> np.ndarray:
    """Equal-sized images as one uint8 NHWC array: 3 channels if `colour`, else 1."""
    if colour:
        images = [np.repeat(image[..., np.newaxis], 3, axis=-1) if image.ndim == 2 else image
                  for image in images]
        return np.stack(images)
    return np.stack(images)[..., np.newaxis]
