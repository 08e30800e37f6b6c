"""Analytics for staff: one report for a date range, in the business's time zone."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from aiohttp import web
from pydantic import BaseModel, Field

from miniapp.api import Api, ApiError, ok, read_query
from miniapp.auth import MINIAPP, staff_member
from miniapp.schemas import Strict
from models import Bot
from services import analytics
from services.i18n import N_

DEFAULT_DAYS = 30
PERIOD_ERRORS = {
    "bad_range": N_("The end of the period is before its start."),
    "too_long": N_("Choose a period of at most a year."),
    "bad_timezone": N_("The business's time zone is not known: check the working hours settings."),
}


class AnalyticsParams(Strict):
    start: date | None = Field(None, description="First day (default: 29 days before `end`)")
    end: date | None = Field(None, description="Last day, inclusive (default: today in the business's time zone)")


class OutcomesOut(BaseModel):
    total: int
    ai_resolved: int
    handed_off: int
    ai_resolved_share: float | None
    handed_off_share: float | None
    handed_off_by_reason: dict[str, int]


class FirstResponseOut(BaseModel):
    count: int
    median_seconds: float | None
    p90_seconds: float | None
    unanswered: int


class RatingsOut(BaseModel):
    count: int
    average: float | None
    distribution: list[int]


class TopQuestionOut(BaseModel):
    text: str
    count: int


class UsageTotal(BaseModel):
    answers: int
    tokens_in: int
    tokens_out: int
    cost: float


class AIUsageOut(BaseModel):
    answers: list[int]
    tokens_in: list[int]
    tokens_out: list[int]
    cost: list[float]
    total: UsageTotal


class ManagerOut(BaseModel):
    user_id: int
    name: str
    taken: int
    replies: int
    closed: int


class PeriodOut(BaseModel):
    start: str
    end: str
    timezone: str


class AnalyticsReport(BaseModel):
    period: PeriodOut
    days: list[str]
    conversations_per_day: dict[str, list[int]] = Field(description="Per channel, aligned with `days`")
    outcomes: OutcomesOut
    first_response: FirstResponseOut
    ratings: RatingsOut
    top_questions: list[TopQuestionOut]
    ai_usage: AIUsageOut
    managers: list[ManagerOut]


async def analytics_report(request: web.Request) -> web.Response:
    await staff_member(request)
    params = read_query(request, AnalyticsParams)
    runtime = request.app[MINIAPP]
    zone = runtime.hours(await Bot.get(id=runtime.bot_id)).zone
    end = params.end or datetime.now(zone).date()
    start = params.start or end - timedelta(days=DEFAULT_DAYS - 1)
    try:
        period = analytics.Period(start, end, zone.key)
    except analytics.InvalidPeriod as error:
        raise ApiError(400, error.code, PERIOD_ERRORS.get(error.code)) from error
    report = await analytics.report(runtime.bot_id, period)
    return ok(AnalyticsReport.model_validate(report.to_dict()))


def add_routes(app: web.Application, api: Api) -> None:
    api.route(app, "GET", "/api/analytics", analytics_report, query=AnalyticsParams, response=AnalyticsReport,
              roles="staff", summary="Conversations, outcomes, response times, ratings, top questions, AI cost "
                                     "and managers' work over a date range (the business's days)")
