"""aiogram routers: thin adapters that parse an update, call a service and render the reply."""

from aiogram import Router

from handlers import customer_commands, customer_messages, generation, manager_desk, membership


def get_routers() -> list[Router]:
    # Commands first: a command is never taken for a question.
    return [
        manager_desk.create_router(),  # groups: the manager chat, and nothing else
        customer_commands.create_router(),
        customer_messages.create_router(),
        membership.create_router(),
        generation.create_router(),
    ]
