"""The benchmark's data: full-size synthetic images in the official file layouts, read by
datasets.load (no real data at full size here)."""
from avh_app.bench import plan as plans


def write_data(root, scale):
    """{dataset: folder}: raw MNIST IDX files (no gzip, so loading stays cheap) and the extracted
    cifar-10-batches-py/ folder, which is what datasets/ reads fastest."""
    from datasets import synthetic

    dirs = {}
    for dataset, (n_train, n_test) in plans.DATA_SIZES.items():
        n_train, n_test = max(int(n_train * scale), 320), max(int(n_test * scale), 256)
        folder = root / dataset
        if dataset == "mnist":
            synthetic.write_mnist(folder, n_train=n_train, n_test=n_test, gz=False)
        else:
            synthetic.write_cifar10(folder, n_per_batch=n_train // 5, n_test=n_test, as_tar=False)
        dirs[dataset] = folder
    return dirs


def write_subset(root):
    """CIFAR-10-subset-sized synthetic data (4,000 / 1,000) where the real subset is missing."""
    from datasets import synthetic

    return synthetic.write_cifar10(root / "cifar10-subset", n_per_batch=800, n_test=1000,
                                   as_tar=False)
