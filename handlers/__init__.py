"""aiogram routers: thin adapters that parse an update, call a service and render the reply."""

from aiogram import Router

from handlers import (
    account,
    customer_commands,
    customer_messages,
    generation,
    improve,
    manager_desk,
    membership,
    team_invite,
    templates,
    widget_link,
)


def get_routers() -> list[Router]:
    # Commands first: a command is never taken for a question.
    return [
        account.create_router(),  # /app in the manager chat is staff's, and not a message to a customer
        manager_desk.create_router(),  # groups: the manager chat, and nothing else
        team_invite.create_router(),  # before /start's own handler: /start invite-<code> from the Team page
        widget_link.create_router(),  # before /start's own handler: /start link-<code> from the widget
        customer_commands.create_router(),
        improve.create_router(),
        templates.create_router(),
        customer_messages.create_router(),
        membership.create_router(),
        generation.create_router(),
    ]
