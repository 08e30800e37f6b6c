"""Analytics for staff: one report for a date range, in the business's time zone."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta

from aiohttp import web
from babel.dates import format_skeleton
from pydantic import BaseModel, Field

from miniapp.admin_api import ADMIN
from miniapp.api import Api, ApiError, ok, read_query
from miniapp.auth import MINIAPP, staff_member, tenant
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
    cost: float = Field(description="Dollars: the AI's answers and the voice transcriptions")
    transcriptions: int = Field(0, description="Customers' voice messages transcribed")
    audio_seconds: int = Field(0, description="Their length, in seconds")
    images: int = Field(0, description="Customers' images given to a vision model")


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


class PreviousOut(BaseModel):
    """The period of the same length just before, in the same figures as the report's headline numbers."""

    period: PeriodOut
    label: str = Field(description="Its first and last day, written for the caller's language")
    conversations: int
    ai_resolved_share: float | None
    first_response_median_seconds: float | None
    ratings_count: int
    ratings_average: float | None
    cost: float
    tokens: int


class AnalyticsReport(BaseModel):
    period: PeriodOut
    days: list[str]
    day_labels: list[str] = Field(description="`days` written short for the caller's language (\"7 Dec\", \"7 дек.\")")
    ai_enabled: bool = Field(description="false: no AI is configured, so the AI's figures are left out of the page")
    previous: PreviousOut
    conversations_per_day: dict[str, list[int]] = Field(description="Per channel, aligned with `days`")
    outcomes: OutcomesOut
    first_response: FirstResponseOut
    ratings: RatingsOut
    top_questions: list[TopQuestionOut]
    ai_usage: AIUsageOut
    managers: list[ManagerOut]


def _day(day: date, locale: str) -> str:
    """A day as the caller's language writes it short, from CLDR (browsers' own Uzbek dates vary)."""
    return format_skeleton("MMMd", day, locale=locale)


async def _period(request: web.Request) -> analytics.Period:
    params = read_query(request, AnalyticsParams)
    runtime = request.app[MINIAPP]
    zone = runtime.hours(await Bot.get(id=await tenant(request))).zone
    end = params.end or datetime.now(zone).date()
    start = params.start or end - timedelta(days=DEFAULT_DAYS - 1)
    try:
        return analytics.Period(start, end, zone.key)
    except analytics.InvalidPeriod as error:
        raise ApiError(400, error.code, PERIOD_ERRORS.get(error.code)) from error


def _previous(report: analytics.Report, locale: str) -> PreviousOut:
    period, usage = report.period, report.ai_usage
    return PreviousOut(
        period=PeriodOut(start=period.start.isoformat(), end=period.end.isoformat(), timezone=period.timezone),
        label=f"{_day(period.start, locale)} – {_day(period.end, locale)}",
        conversations=report.outcomes.total, ai_resolved_share=report.outcomes.share(report.outcomes.ai_resolved),
        first_response_median_seconds=report.first_response.median, ratings_count=report.ratings.count,
        ratings_average=report.ratings.average, cost=round(sum(usage.cost), 6),
        tokens=sum(usage.tokens_in) + sum(usage.tokens_out))


async def analytics_report(request: web.Request) -> web.Response:
    caller = await staff_member(request)
    period = await _period(request)
    bot_id = await tenant(request)
    report, previous = await analytics.report(bot_id, period), await analytics.report(bot_id, period.previous())
    admin = request.app.get(ADMIN)
    return ok(AnalyticsReport.model_validate({
        **report.to_dict(), "day_labels": [_day(day, caller.locale) for day in report.days],
        "ai_enabled": admin is not None and admin.ai is not None, "previous": _previous(previous, caller.locale)}))


CSV_COLUMNS = ("date", "conversations_telegram", "conversations_widget", "ai_answers", "ai_tokens_in",
               "ai_tokens_out", "ai_cost_usd")


async def analytics_csv(request: web.Request) -> web.Response:
    """The report's daily figures as CSV, one row a day and a total: the numbers the charts draw."""
    await staff_member(request)
    period = await _period(request)
    report = await analytics.report(await tenant(request), period)
    per_day, usage = report.conversations_per_day, report.ai_usage
    columns = (per_day.get("telegram", ()), per_day.get("widget", ()), usage.answers, usage.tokens_in,
               usage.tokens_out)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for index, day in enumerate(report.days):
        writer.writerow([day.isoformat(), *(column[index] if column else 0 for column in columns),
                         f"{usage.cost[index]:.6f}"])
    writer.writerow(["total", *(sum(column) for column in columns), f"{sum(usage.cost):.6f}"])
    name = f"frontdesk-analytics-{period.start.isoformat()}-{period.end.isoformat()}.csv"
    return web.Response(text=out.getvalue(), content_type="text/csv", charset="utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})


def add_routes(app: web.Application, api: Api) -> None:
    api.route(app, "GET", "/api/analytics", analytics_report, query=AnalyticsParams, response=AnalyticsReport,
              roles="staff", summary="Conversations, outcomes, response times, ratings, top questions, AI cost "
                                     "and managers' work over a date range (the business's days), with the same "
                                     "headline figures for the period of the same length just before")
    api.route(app, "GET", "/api/analytics/export.csv", analytics_csv, query=AnalyticsParams, roles="staff",
              content_type="text/csv", summary="The report's daily figures (conversations by channel, AI answers, "
                                               "tokens and cost) as CSV, one row a day and a total row")
