from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from enum import StrEnum
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index


# The enums as they were when this migration was written (frozen here, not imported from models:
# a later change to models must not rewrite history). Only their values reach the database.
class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Role(StrEnum):
    CUSTOMER = "customer"
    MANAGER = "manager"
    ADMIN = "admin"


class Channel(StrEnum):
    TELEGRAM = "telegram"
    WIDGET = "widget"


class ConversationMode(StrEnum):
    AI = "ai"
    HUMAN = "human"


class ConversationStatus(StrEnum):
    OPEN = "open"
    WAITING = "waiting"
    ASSIGNED = "assigned"
    CLOSED = "closed"


class AuthorKind(StrEnum):
    CUSTOMER = "customer"
    AI = "ai"
    MANAGER = "manager"
    SYSTEM = "system"
    NOTE = "note"


class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='Bot',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('telegram_id', fields.BigIntField(unique=True)),
                ('username', fields.CharField(default='', max_length=64)),
                ('manager_chat_id', fields.BigIntField(null=True)),
                ('settings', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'bot', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A Telegram bot served by this deployment: every tenant-owned row points at one.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='KnowledgeItem',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('bot', fields.ForeignKeyField('models.Bot', source_field='bot_id', db_constraint=True, to_field='id', related_name='knowledge', on_delete=OnDelete.CASCADE)),
                ('question', fields.TextField(unique=False)),
                ('answer', fields.TextField(unique=False)),
                ('tags', fields.CharField(default='', max_length=512)),
                ('enabled', fields.BooleanField(default=True)),
                ('hit_count', fields.IntField(default=0)),
                ('question_key', fields.CharField(max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'knowledge_item', 'app': 'models', 'unique_together': (('bot', 'question_key'),), 'pk_attr': 'id', 'table_description': 'A question and its answer, full-text indexed by a migration (FTS5 / tsvector).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='OutboxJob',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('bot', fields.ForeignKeyField('models.Bot', source_field='bot_id', db_constraint=True, to_field='id', related_name='jobs', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharField(max_length=32)),
                ('payload', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('lane', fields.CharField(default='', max_length=64)),
                ('status', fields.CharEnumField(default=JobStatus.PENDING, description='PENDING: pending\nRUNNING: running\nDONE: done\nFAILED: failed', enum_type=JobStatus, max_length=16)),
                ('attempts', fields.SmallIntField(default=0)),
                ('last_error', fields.TextField(default='', unique=False)),
                ('run_after', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('lease_owner', fields.CharField(default='', max_length=64)),
                ('lease_expires_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'outbox_job', 'app': 'models', 'indexes': [Index(fields=['status', 'run_after'])], 'pk_attr': 'id', 'table_description': 'Work caused by a stored message, written in the same transaction as that message.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Persona',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('bot', fields.ForeignKeyField('models.Bot', source_field='bot_id', db_constraint=True, to_field='id', related_name='personas', on_delete=OnDelete.CASCADE)),
                ('version', fields.IntField()),
                ('text', fields.TextField(unique=False)),
                ('active', fields.BooleanField(default=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'persona', 'app': 'models', 'unique_together': (('bot', 'version'),), 'pk_attr': 'id', 'table_description': 'The system prompt. Every change is a new version, one active per bot.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='User',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('bot', fields.ForeignKeyField('models.Bot', source_field='bot_id', db_constraint=True, to_field='id', related_name='users', on_delete=OnDelete.CASCADE)),
                ('telegram_id', fields.BigIntField(null=True)),
                ('widget_visitor_id', fields.CharField(null=True, max_length=64)),
                ('first_name', fields.CharField(default='', max_length=256)),
                ('last_name', fields.CharField(default='', max_length=256)),
                ('username', fields.CharField(default='', max_length=64)),
                ('language', fields.CharField(default='', max_length=8)),
                ('role', fields.CharEnumField(default=Role.CUSTOMER, description='CUSTOMER: customer\nMANAGER: manager\nADMIN: admin', enum_type=Role, max_length=16)),
                ('blocked_bot', fields.BooleanField(default=False)),
                ('banned', fields.BooleanField(default=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('last_seen_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'user', 'app': 'models', 'unique_together': (('bot', 'telegram_id'), ('bot', 'widget_visitor_id')), 'pk_attr': 'id', 'table_description': 'A customer or a staff member of one bot.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='AuditLog',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('bot', fields.ForeignKeyField('models.Bot', source_field='bot_id', db_constraint=True, to_field='id', related_name='audit', on_delete=OnDelete.CASCADE)),
                ('actor', fields.ForeignKeyField('models.User', source_field='actor_id', null=True, db_constraint=True, to_field='id', related_name='audit_entries', on_delete=OnDelete.SET_NULL)),
                ('action', fields.CharField(max_length=64)),
                ('target', fields.CharField(default='', max_length=128)),
                ('details', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'audit_log', 'app': 'models', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Conversation',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('uuid', fields.UUIDField(unique=True)),
                ('bot', fields.ForeignKeyField('models.Bot', source_field='bot_id', db_constraint=True, to_field='id', related_name='conversations', on_delete=OnDelete.CASCADE)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', db_constraint=True, to_field='id', related_name='conversations', on_delete=OnDelete.CASCADE)),
                ('channel', fields.CharEnumField(default=Channel.TELEGRAM, description='TELEGRAM: telegram\nWIDGET: widget', enum_type=Channel, max_length=16)),
                ('mode', fields.CharEnumField(default=ConversationMode.AI, description='AI: ai\nHUMAN: human', enum_type=ConversationMode, max_length=16)),
                ('status', fields.CharEnumField(default=ConversationStatus.OPEN, description='OPEN: open\nWAITING: waiting\nASSIGNED: assigned\nCLOSED: closed', enum_type=ConversationStatus, max_length=16)),
                ('assignee', fields.ForeignKeyField('models.User', source_field='assignee_id', null=True, db_constraint=True, to_field='id', related_name='assigned_conversations', on_delete=OnDelete.SET_NULL)),
                ('handoff_reason', fields.CharField(default='', max_length=32)),
                ('manager_topic_id', fields.BigIntField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('first_response_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_message_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('closed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('rating', fields.SmallIntField(null=True)),
            ],
            options={'table': 'conversation', 'app': 'models', 'indexes': [Index(fields=['user_id', 'status'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Message',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('bot', fields.ForeignKeyField('models.Bot', source_field='bot_id', db_constraint=True, to_field='id', related_name='messages', on_delete=OnDelete.CASCADE)),
                ('conversation', fields.ForeignKeyField('models.Conversation', source_field='conversation_id', db_constraint=True, to_field='id', related_name='messages', on_delete=OnDelete.CASCADE)),
                ('author_kind', fields.CharEnumField(description='CUSTOMER: customer\nAI: ai\nMANAGER: manager\nSYSTEM: system\nNOTE: note', enum_type=AuthorKind, max_length=16)),
                ('author', fields.ForeignKeyField('models.User', source_field='author_id', null=True, db_constraint=True, to_field='id', related_name='messages', on_delete=OnDelete.SET_NULL)),
                ('text', fields.TextField(default='', unique=False)),
                ('attachments', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('copies', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('ai_meta', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('source_key', fields.CharField(null=True, max_length=96)),
                ('reply_to', fields.ForeignKeyField('models.Message', source_field='reply_to_id', null=True, db_constraint=True, to_field='id', related_name='replies', on_delete=OnDelete.SET_NULL)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'message', 'app': 'models', 'unique_together': (('bot', 'source_key'),), 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Usage',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('bot', fields.ForeignKeyField('models.Bot', source_field='bot_id', db_constraint=True, to_field='id', related_name='usage', on_delete=OnDelete.CASCADE)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', db_constraint=True, to_field='id', related_name='usage', on_delete=OnDelete.CASCADE)),
                ('day', fields.DateField()),
                ('messages', fields.IntField(default=0)),
                ('ai_messages', fields.IntField(default=0)),
                ('tokens_in', fields.IntField(default=0)),
                ('tokens_out', fields.IntField(default=0)),
                ('cost', fields.DecimalField(default=0, max_digits=12, decimal_places=6)),
            ],
            options={'table': 'usage', 'app': 'models', 'unique_together': (('user', 'day'),), 'pk_attr': 'id', 'table_description': 'Per customer per day, what quotas and analytics count.'},
            bases=['Model'],
        ),
    ]
