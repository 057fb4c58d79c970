"""What is learned: one task per module, registered by name (``task.name`` in a recipe).

:mod:`vidgrid.tasks.base` defines the interface; adding a task is a new module with a
``@register_task`` class, its import below, and its tests.
"""

from vidgrid.tasks.base import Task, list_tasks, register_task, task_class, task_for
from vidgrid.tasks import classification, detection, multi_label, multitrain, sibling  # noqa: F401,E402  (register the tasks)

__all__ = ["Task", "list_tasks", "register_task", "task_class", "task_for"]
