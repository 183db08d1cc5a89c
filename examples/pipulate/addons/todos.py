"""Todos, per profile: the demo add-on that shows the parts of one. A table of its own (with a profile_id column,
so deleting a profile deletes its todos), a card in the workspace, and routes under /todos that answer HTMX with
the pieces of the card they change.
"""
import html
import json

from fasthtml.common import *

from core.db import INDEXES, db, fits, table, transaction
from core.profiles import MAX_TEXT, current_profile, text_error
from core.ui import Error

PAGE = 50  # todos shown at once: a page costs the same with 10 or 10,000 todos stored
NO_TITLE = "Give the todo a title."
UNKNOWN_TODO = "That todo does not exist (deleted, or another profile's)."

router = APIRouter()


# priority is a rank: a moved todo takes a value between its new neighbours', so a move writes one row.
todos, Todo = table("todos", id=int, profile_id=int, title=str, done=bool, priority=float)
INDEXES.append("CREATE INDEX IF NOT EXISTS todos_in_order ON todos (profile_id, priority, id)")


# Todo queries read and write only the rows they need, each in one statement or transaction, so their cost does
# not grow with the list and a second process (another server, a notebook) loses none of their updates.
TODO = "SELECT id, profile_id, title, done, priority FROM todos"
RETURNING = "RETURNING id, profile_id, title, done, priority"


def todo_rows(sql: str, args) -> list[Todo]:
    return [Todo(*values) for values in db.execute(sql, args)]


def todo_count(profile_id: int) -> int:
    return db.execute("SELECT count(*) FROM todos WHERE profile_id = ?", [profile_id]).fetchone()[0]


def todo_page(profile_id: int, page: int) -> list[Todo]:
    return todo_rows(f"{TODO} WHERE profile_id = ? ORDER BY priority, id LIMIT ? OFFSET ?",
                     [profile_id, PAGE, page * PAGE])


def todo_of(profile_id: int, todo_id: int) -> Todo | None:
    """The todo if it belongs to this profile; another profile's id is as unknown as a missing one."""
    found = fits(todo_id) and todo_rows(f"{TODO} WHERE id = ? AND profile_id = ?", [todo_id, profile_id])
    return found[0] if found else None


def page_of(todo: Todo) -> int:
    ahead = db.execute("SELECT count(*) FROM todos WHERE profile_id = ? AND (priority, id) < (?, ?)",
                       [todo.profile_id, todo.priority, todo.id]).fetchone()[0]
    return ahead // PAGE


def add_todo(profile_id: int, title: str) -> Todo:
    """A new todo at the end of the list. In a write transaction: on PostgreSQL, another server's add could
    otherwise read the same last rank."""
    with transaction():
        return todo_rows("INSERT INTO todos (profile_id, title, done, priority) "
                         "SELECT ?, ?, 0, coalesce(max(priority) + 1, 0) FROM todos WHERE profile_id = ? "
                         f"{RETURNING}", [profile_id, title, profile_id])[0]


def change_todo(profile_id: int, todo_id: int, change: str, args=()) -> Todo | None:
    """The todo after `UPDATE todos SET {change}`, or None if it is not this profile's."""
    found = fits(todo_id) and todo_rows(f"UPDATE todos SET {change} WHERE id = ? AND profile_id = ? {RETURNING}",
                                        [*args, todo_id, profile_id])
    return found[0] if found else None


def delete_todo(profile_id: int, todo_id: int) -> bool:
    return fits(todo_id) and bool(db.execute("DELETE FROM todos WHERE id = ? AND profile_id = ? RETURNING id",
                                             [todo_id, profile_id]).fetchall())


def move_todo(profile_id: int, todo_id: int, by: int) -> Todo | None:
    """Move a todo `by` places (negative is up; past either end is to that end); None if it is not this profile's.

    The todo takes the rank halfway between its new neighbours', so a move writes one row. When their ranks are
    equal or have no float left between them (after about 50 moves into one gap), the list is renumbered first.
    """
    with transaction():
        if not (todo := todo_of(profile_id, todo_id)) or not by or not (gap := landing(todo, by)):
            return todo
        if not gap[0] < sum(gap) / 2 < gap[1]:
            renumber(profile_id)
            gap = landing(todo_of(profile_id, todo_id), by)
        return todo_rows(f"UPDATE todos SET priority = ? WHERE id = ? {RETURNING}", [sum(gap) / 2, todo_id])[0]


def landing(todo: Todo, by: int) -> tuple[float, float] | None:
    """The ranks (low, high) of the two todos that moving `by` places puts this one between; past either end of
    the list the far one is made up. None if the todo is at that end already."""
    beyond, toward, away = ("<", "DESC", "") if by < 0 else (">", "", "DESC")

    def ranks(order: str, offset: int) -> list[float]:
        return [rank for rank, in db.execute(
            f"SELECT priority FROM todos WHERE profile_id = ? AND (priority, id) {beyond} (?, ?) "
            f"ORDER BY priority {order}, id {order} LIMIT 2 OFFSET ?",
            [todo.profile_id, todo.priority, todo.id, offset])]

    found = ranks(toward, min(abs(by), 2**62) - 1) or ranks(away, 0)[:1]  # fewer todos that way: to the end
    if not found:
        return None
    near = found[0]
    far = found[1] if len(found) == 2 else near - 2 if by < 0 else near + 2
    return min(near, far), max(near, far)


def renumber(profile_id: int) -> None:
    db.execute("UPDATE todos SET priority = ranked.n FROM (SELECT id, row_number() OVER (ORDER BY priority, id) AS n "
               "FROM todos WHERE profile_id = ?) AS ranked WHERE todos.id = ranked.id", [profile_id])


def attr(text: str) -> str:
    """Text escaped for a double-quoted HTML attribute."""
    return html.escape(text, quote=False).replace('"', "&quot;")


MOVE_UP, MOVE_DOWN = json.dumps({"by": -1}), json.dumps({"by": 1})


def TodoItem(todo: Todo, error: str = "") -> Safe:
    """One todo. An HTML template rather than FT: a page renders PAGE of them on every add, move and page turn,
    and building and serializing the same FT elements took over 100 times as long."""
    i, done = todo.id, bool(todo.done)
    swap = f'hx-target="#todo-{i}" hx-swap="outerHTML"'
    move = f'hx-post="/todos/{i}/move" hx-target="#todo-page" hx-swap="outerHTML" class="outline"'
    return Safe(
        f'<li id="todo-{i}" class="todo{" done" if done else ""}">'
        f'<input type="checkbox" aria-label="Done" hx-post="/todos/{i}/toggle" {swap}{" checked" if done else ""}>'
        f'<input name="title" value="{attr(todo.title)}" aria-label="Title" hx-post="/todos/{i}/rename" '
        f'hx-trigger="change" {swap}>'
        f"<button {move} hx-vals='{MOVE_UP}' aria-label=\"Move up\">↑</button>"
        f"<button {move} hx-vals='{MOVE_DOWN}' aria-label=\"Move down\">↓</button>"
        f'<button hx-delete="/todos/{i}" {swap} class="outline" aria-label="Delete">✕</button>'
        f'{to_xml(Error(error, id=f"todo-{i}-error")) if error else ""}</li>')


def UnknownTodo(todo_id: int):
    return Li(Error(UNKNOWN_TODO, id=f"todo-{todo_id}-error"), id=f"todo-{todo_id}")


def Pager(page: int, last: int, total: int):
    def turn(label: str, to: int, name: str):
        return Button(label, hx_get="/todos", hx_vals={"page": to}, hx_target="#todo-page", hx_swap="outerHTML",
                      aria_label=name, disabled=to == page or not 0 <= to <= last,
                      id=f"todos-{name.split()[0].lower()}", cls="outline")

    shown = f"{page * PAGE + 1:,}–{min(total, (page + 1) * PAGE):,} of {total:,}"
    return Nav(turn("«", 0, "First page"), turn("‹", page - 1, "Previous page"), Span(shown),
               turn("›", page + 1, "Next page"), turn("»", last, "Last page"), aria_label="Todo pages", cls="pager")


def TodoPage(profile_id: int, page: int = 0, error: str = ""):
    """A page of the profile's todos, with buttons to the other pages when there are more than PAGE."""
    total = todo_count(profile_id)
    last = max(total - 1, 0) // PAGE
    page = max(0, min(page, last))
    items = Safe("".join(map(TodoItem, todo_page(profile_id, page))))
    return Div(Ul(items, Li(Error(error, id="todo-list-error")) if error else "", id="todo-list"),
               Pager(page, last, total) if total > PAGE else "", id="todo-page")


def NewTodo(draft: str = "", error: str = ""):
    return Form(
        Fieldset(Input(name="title", value=draft, placeholder="New todo", maxlength=MAX_TEXT, aria_label="New todo"),
                 Button("Add"), role="group"),
        Error(error, id="new-todo-error"),
        id="new-todo", hx_post="/todos", hx_target="#todo-page", hx_swap="outerHTML")


def card(profile):
    return Section(H2(f"Todos · {profile.name}"), TodoPage(profile.id), NewTodo(), id="todos")


@router.get("/todos")
def todos_page(sess, page: int = 0):
    return TodoPage(current_profile(sess).id, page)


@router.post("/todos")
def todos_add(sess, title: str = ""):
    if error := text_error(title, empty=NO_TITLE):
        return NewTodo(title, error)(hx_swap_oob="true"), HttpHeader("HX-Reswap", "none")
    todo = add_todo(current_profile(sess).id, title.strip())
    return TodoPage(todo.profile_id, page_of(todo)), NewTodo()(hx_swap_oob="true")


@router.post("/todos/{id}/toggle")
def todos_toggle(sess, id: int):
    todo = change_todo(current_profile(sess).id, id, "done = 1 - done")
    return TodoItem(todo) if todo else UnknownTodo(id)


@router.post("/todos/{id}/rename")
def todos_rename(sess, id: int, title: str = ""):
    profile_id = current_profile(sess).id
    if error := text_error(title, empty=NO_TITLE):
        todo = todo_of(profile_id, id)
        return TodoItem(todo, error) if todo else UnknownTodo(id)
    todo = change_todo(profile_id, id, "title = ?", [title.strip()])
    return TodoItem(todo) if todo else UnknownTodo(id)


@router.delete("/todos/{id}")
def todos_delete(sess, id: int):
    return "" if delete_todo(current_profile(sess).id, id) else UnknownTodo(id)


@router.post("/todos/{id}/move")
def todos_move(sess, id: int, by: int = 0):
    """Move a todo `by` places (negative is up) and show the page it lands on."""
    profile_id = current_profile(sess).id
    if not (todo := move_todo(profile_id, id, by)):
        return TodoPage(profile_id, error=UNKNOWN_TODO)
    return TodoPage(profile_id, page_of(todo))
