"""The baseline for todo adds: about the least a FastHTML todo app can be (fastlite table, add returns one row).

    PORT=5001 python bench/minimal_todo.py   (run from an empty folder: it writes todos.db there)
"""
import os

import uvicorn
from fasthtml.common import *
from fastlite import database

db = database("todos.db")
todos = db.t.todos
todos.create(id=int, title=str, done=bool, pk="id", transform=True)
app, rt = fast_app(live=False)


def TodoRow(todo):
    return Li(Input(type="checkbox", checked=bool(todo["done"])), todo["title"], id=f"todo-{todo['id']}")


@rt("/")
def get():
    return Titled("Todos", Ul(*map(TodoRow, todos()), id="todos"),
                  Form(Input(name="title"), Button("Add"), hx_post="/todos", hx_target="#todos", hx_swap="beforeend"))


@rt("/todos")
def post(title: str):
    return TodoRow(todos.insert(title=title, done=False))


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
