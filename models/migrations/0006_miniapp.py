"""The Mini App: browser login links and sessions, customers' preferences, and the inbox's index.

The inbox lists every conversation of a bot newest first (AI, closed, all): conversation_with_people_idx
(migration 0005) covers only the waiting and assigned ones.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0005_query_indexes')]

    initial = False

    operations = [
        ops.CreateModel(
            name='LoginLink',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('bot', fields.ForeignKeyField('models.Bot', source_field='bot_id', db_constraint=True, to_field='id', related_name='login_links', on_delete=OnDelete.CASCADE)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', db_constraint=True, to_field='id', related_name='login_links', on_delete=OnDelete.CASCADE)),
                ('token_digest', fields.CharField(unique=True, max_length=64)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'login_link', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A one-time link from /dashboard that opens the Mini App in a normal browser.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='WebSession',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('bot', fields.ForeignKeyField('models.Bot', source_field='bot_id', db_constraint=True, to_field='id', related_name='web_sessions', on_delete=OnDelete.CASCADE)),
                ('user', fields.ForeignKeyField('models.User', source_field='user_id', db_constraint=True, to_field='id', related_name='web_sessions', on_delete=OnDelete.CASCADE)),
                ('token_digest', fields.CharField(unique=True, max_length=64)),
                ('csrf_token', fields.CharField(max_length=64)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'web_session', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A browser session made from a login link: the cookie holds the token, this row its digest.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='User',
            name='preferences',
            field=fields.JSONField(default=dict, db_default='{}', encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
        ops.RunSQL(
            ["CREATE INDEX conversation_inbox_idx ON conversation (bot_id, last_message_at DESC, id DESC)",
             "CREATE INDEX conversation_user_idx ON conversation (user_id, last_message_at DESC, id DESC)"],
            reverse_sql=["DROP INDEX conversation_inbox_idx", "DROP INDEX conversation_user_idx"],
        ),
    ]
