from falcoir.core.alert import Alert

VERSION: int
MAX_LINE: int

def text_alert(line: str, lineno: int, /) -> Alert | None: ...
def wrapper(prefix: str, /) -> tuple[tuple[str, str], ...] | None: ...
def configure(
    alert: type,
    process: type,
    container: type,
    k8s: type,
    connection: type,
    slots: dict[str, tuple[int, int]],
    known_keys: tuple[str, ...],
    free_text_keys: tuple[str, ...],
    /,
) -> None: ...
