"""Small text helpers shared by reports and the command line."""


def plural(count: int, word: str, many: str | None = None) -> str:
    """'1 face', '2 faces', '0 people' (with many="people"): counts read as English."""
    return f"{count} {word if count == 1 else (many or word + 's')}"
