"""The demo tool: count the words in text files, one file per progress step."""
from pathlib import Path

from settings import DATA
from tools import progress

APP_FOLDERS = {"uploads", "outputs"}  # the app's own files under data/, not the user's
TEXT_SUFFIXES = {".txt", ".md", ".csv", ".json", ".html", ".py", ".yml", ".yaml", ".toml", ".log"}


def count_words(upload: Path | None = None, top: int = 10, report=progress) -> str:
    """Count the words in a text file you upload, or in every text file under data/.

    Args:
        upload: A text file (.txt, .md, .csv, ...). Leave it empty to count the files under data/.
        top: How many of the wordiest files to list.
    """
    files = [upload] if upload else _text_files(DATA)
    report(0, len(files), "1 uploaded file" if upload else f"{len(files)} text files under data/")
    counts = {}
    for done, path in enumerate(files, 1):
        name = path.name if upload else path.relative_to(DATA).as_posix()
        counts[name] = words = _word_count(path)
        report(done, len(files), f"{name}: {words:,} words")
    if not files:
        return "No text files under data/: add .txt, .md or .csv files there, or upload one, and run it again."
    wordiest = sorted(counts.items(), key=lambda item: -item[1])[:top]
    width = max((len(name) for name, _ in wordiest), default=0)
    return "\n".join([f"{sum(counts.values()):,} words in {len(files)} files.", "",
                      *(f"{name:<{width}}  {words:>9,}" for name, words in wordiest)])


def _text_files(folder: Path) -> list[Path]:
    return sorted(path for path in folder.rglob("*")
                  if path.suffix.lower() in TEXT_SUFFIXES and path.is_file()
                  and not APP_FOLDERS & set(path.relative_to(folder).parts[:1]))


def _word_count(path: Path) -> int:
    with path.open(encoding="utf-8", errors="replace") as f:
        return sum(len(line.split()) for line in f)
