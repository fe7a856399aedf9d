"""Damaged copies of the files users load, for the tests that check the errors they get."""
import zipfile


def truncate_weights(source, target) -> None:
    """Copies a .keras archive with its model.weights.h5 cut in half: a valid zip, damaged
    weights."""
    with zipfile.ZipFile(source) as archive, zipfile.ZipFile(target, "w") as damaged:
        for item in archive.infolist():
            payload = archive.read(item.filename)
            if item.filename == "model.weights.h5":
                payload = payload[: len(payload) // 2]
            damaged.writestr(item, payload)
